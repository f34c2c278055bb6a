//go:build unix && !linux

package agent

import "syscall"

// setDeathSignal: only Linux has a parent-death signal; elsewhere a stdio
// server sees its stdin close when the gateway dies.
func setDeathSignal(*syscall.SysProcAttr) {}
