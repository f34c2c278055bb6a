package agent

import "syscall"

// setDeathSignal has the kernel stop a stdio server if the gateway dies
// without closing it.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGTERM }
