package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPUTicks is a process's CPU time from /proc/PID/stat, in clock ticks
// (USER_HZ, see ClockTicks).
type CPUTicks struct {
	User   uint64 // utime: field 14
	System uint64 // stime: field 15
}

// Total is user plus system time, saturating instead of wrapping around
// (only a corrupt input comes near the limit).
func (c CPUTicks) Total() uint64 {
	if c.User > math.MaxUint64-c.System {
		return math.MaxUint64
	}
	return c.User + c.System
}

// ProcStat is the part of /proc/PID/stat the harness reads.
type ProcStat struct {
	PPID int
	CPU  CPUTicks
}

// ParseStat parses the contents of /proc/PID/stat. The command name (field
// 2) is in parentheses and may itself contain spaces and parentheses, so the
// fields are counted from the last ')'.
func ParseStat(data string) (ProcStat, error) {
	i := strings.LastIndexByte(data, ')')
	if i < 0 {
		return ProcStat{}, errors.New("parsing /proc stat: no ')' after the command name")
	}
	// fields[0] is field 3 (state), so field N is fields[N-3].
	fields := strings.Fields(data[i+1:])
	if len(fields) < 13 {
		return ProcStat{}, fmt.Errorf("parsing /proc stat: %d fields after the command name, want at least 13", len(fields))
	}
	ppid, err := strconv.Atoi(fields[4-3])
	if err != nil {
		return ProcStat{}, fmt.Errorf("parsing /proc stat: ppid %q: %w", fields[4-3], err)
	}
	ut, err := strconv.ParseUint(fields[14-3], 10, 64)
	if err != nil {
		return ProcStat{}, fmt.Errorf("parsing /proc stat: utime %q: %w", fields[14-3], err)
	}
	st, err := strconv.ParseUint(fields[15-3], 10, 64)
	if err != nil {
		return ProcStat{}, fmt.Errorf("parsing /proc stat: stime %q: %w", fields[15-3], err)
	}
	return ProcStat{PPID: ppid, CPU: CPUTicks{User: ut, System: st}}, nil
}

// MemKB is a process's resident memory from /proc/PID/status, in KiB.
type MemKB struct {
	RSS uint64 // VmRSS: resident now
	HWM uint64 // VmHWM: peak resident since start
}

// ParseStatus reads VmRSS and VmHWM from the contents of /proc/PID/status.
// Both must be present (kernel threads and zombies have neither).
func ParseStatus(data string) (MemKB, error) {
	var m MemKB
	var haveRSS, haveHWM bool
	for line := range strings.Lines(data) {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return MemKB{}, fmt.Errorf("parsing /proc status: %s: want \"N kB\", got %q", key, strings.TrimSpace(val))
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return MemKB{}, fmt.Errorf("parsing /proc status: %s %q: %w", key, f[0], err)
		}
		if key == "VmRSS" {
			m.RSS, haveRSS = n, true
		} else {
			m.HWM, haveHWM = n, true
		}
	}
	if !haveRSS || !haveHWM {
		return MemKB{}, errors.New("parsing /proc status: VmRSS or VmHWM missing")
	}
	return m, nil
}

// readStat reads and parses /proc/PID/stat.
func readStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return ProcStat{}, err
	}
	st, err := ParseStat(string(b))
	if err != nil {
		return ProcStat{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return st, nil
}

// readMem reads and parses /proc/PID/status.
func readMem(pid int) (MemKB, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return MemKB{}, err
	}
	m, err := ParseStatus(string(b))
	if err != nil {
		return MemKB{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return m, nil
}

// cpuOf sums the CPU ticks of pids.
func cpuOf(pids []int) (uint64, error) {
	var sum uint64
	for _, pid := range pids {
		st, err := readStat(pid)
		if err != nil {
			return 0, err
		}
		sum += st.CPU.Total()
	}
	return sum, nil
}

// memOf sums the resident memory of pids.
func memOf(pids []int) (MemKB, error) {
	var sum MemKB
	for _, pid := range pids {
		m, err := readMem(pid)
		if err != nil {
			return MemKB{}, err
		}
		sum.RSS += m.RSS
		sum.HWM += m.HWM
	}
	return sum, nil
}

// childrenOf lists the processes whose parent is ppid, by scanning /proc.
func childrenOf(ppid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		if st.PPID == ppid {
			kids = append(kids, pid)
		}
	}
	return kids, nil
}

// ClockTicks returns USER_HZ, the unit of /proc/PID/stat CPU times, from
// `getconf CLK_TCK`, or 100 (the value on every common Linux build) when
// getconf is missing.
func ClockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// memSampler polls a process's VmRSS until stopped and keeps the maximum.
type memSampler struct {
	stop chan struct{}
	done chan struct{}
	max  MemKB
	err  error
}

// sampleMem starts polling pids every interval; call Stop to end it.
func sampleMem(pids []int, interval time.Duration) *memSampler {
	s := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			m, err := memOf(pids)
			if err != nil {
				s.err = err
				return
			}
			s.max.RSS = max(s.max.RSS, m.RSS)
			s.max.HWM = max(s.max.HWM, m.HWM)
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends the polling and returns the largest values seen.
func (s *memSampler) Stop() (MemKB, error) {
	close(s.stop)
	<-s.done
	return s.max, s.err
}
