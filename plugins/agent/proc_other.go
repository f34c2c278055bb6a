//go:build !unix

package agent

import "os/exec"

// setProcAttr: no process groups here; the SDK stops the process itself.
func setProcAttr(*exec.Cmd) {}

// killGroup: nothing more to kill without process groups.
func killGroup(*exec.Cmd) {}
