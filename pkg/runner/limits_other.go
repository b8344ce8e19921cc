//go:build !linux

package runner

import (
	"os"
	"os/exec"
	"syscall"
)

// shimmed reports that rlimits are not set here: only Linux has the
// rlimit shim.
func shimmed(cmd *exec.Cmd, path string, l Limits) bool { return false }

// watch waits for stop: without /proc there is no group to look at, so
// only the output limit applies here.
func (p *Process) watch(l Limits, viaShim bool, stop <-chan struct{}) { <-stop }

// bornIn does nothing: cgroups are Linux's.
func bornIn(attr *syscall.SysProcAttr, fd int) {}

// handlerMaxRSS is unknown here.
func handlerMaxRSS(state *os.ProcessState) int64 { return 0 }
