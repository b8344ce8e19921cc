package runner

import (
	"syscall"
	"unsafe"
)

// pPID is P_PID from <sys/wait.h>.
const pPID = 1

// waitExited blocks until the process pid has exited, without reaping it,
// and reports whether it could do so.
func waitExited(pid int) bool {
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		switch errno {
		case 0:
			return true
		case syscall.EINTR:
			continue
		default:
			return false
		}
	}
}

// sysProcAttr puts the handler in its own process group and, should the
// daemon itself be killed with SIGKILL, has the kernel kill the handler
// too rather than leave it running a job nobody will record.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
