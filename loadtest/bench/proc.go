package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// proc is a child process the harness started and must stop.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when Wait returns
	waitErr error
	// logFrom is where logTail starts: what the process logged before it
	// (its start, see markLog) is not news.
	logFrom int
}

// procs owns every child process; stopAll ends them in reverse start order.
type procs struct {
	list    []*proc
	taskset string // path of taskset, or empty: no pinning
}

// start runs argv as name, pinned to cpu when pinning is on and cpu is not
// empty, with stdout and stderr going to logPath.
func (ps *procs) start(name, cpu, logPath string, argv []string) (*proc, error) {
	if ps.taskset != "" && cpu != "" {
		argv = append([]string{ps.taskset, "-c", cpu}, argv...)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Should the harness die without cleaning up, the child gets SIGTERM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, argv[0], err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	ps.list = append(ps.list, p)
	return p, nil
}

// pid is the process id; taskset execs its command, so it is the pinned
// program's own.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits up to 5 s, then kills the process.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// alive reports an error naming the process when it has exited.
func (p *proc) alive() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited (%v); log %s:\n%s", p.name, p.waitErr, p.logPath, p.logTail())
	default:
		return nil
	}
}

// logTail returns the last 2 KB of the process's log since markLog.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	b = b[min(p.logFrom, len(b)):]
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return string(bytes.TrimSpace(b))
}

// markLog returns the log so far and makes logTail start after it.
func (p *proc) markLog() ([]byte, error) {
	b, err := os.ReadFile(p.logPath)
	p.logFrom = len(b)
	return b, err
}

// stopAll stops every process, the last started first.
func (ps *procs) stopAll() {
	for i := len(ps.list) - 1; i >= 0; i-- {
		ps.list[i].stop()
	}
	ps.list = nil
}

// freePort returns a loopback port that was free a moment ago: it listens on
// port 0 and closes the listener.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", err
	}
	return addr, nil
}

// waitReady polls GET url until it answers 200, p exits, ctx ends or 30 s
// pass.
func waitReady(ctx context.Context, p *proc, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl := &http.Client{Timeout: time.Second}
	defer cl.CloseIdleConnections()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if err := p.alive(); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := cl.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("%s not ready at %s after 30 s: %v; log %s:\n%s", p.name, url, last, p.logPath, p.logTail())
			}
			return ctx.Err()
		case <-p.exited:
		case <-tick.C:
		}
	}
}

// pinSelf pins every thread of this process to cpu with taskset.
func pinSelf(taskset, cpu string) error {
	out, err := exec.Command(taskset, "-a", "-p", "-c", cpu, strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pinning the harness to CPU %s: %v: %s", cpu, err, bytes.TrimSpace(out))
	}
	return nil
}
