//go:build unix

package agent

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts a stdio server in a process group of its own, so that
// killGroup reaches the children it starts, and keeps the terminal's
// signals (Ctrl-C) for the gateway, which stops its servers itself.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
}

// killGroup kills what is left of a stdio server's process group, once
// its process has been waited for.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil && cmd.Process.Pid > 0 {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
