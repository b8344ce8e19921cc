//go:build !linux

package runner

import "syscall"

// waitExited reports that waiting without reaping is not supported here, so
// the process group is killed right after the leader has been reaped.
func waitExited(pid int) bool { return false }

// sysProcAttr puts the handler in its own process group.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
