package runner

import "golang.org/x/sys/unix"

// unreadBytes is how many bytes wait in the pipe fd (0 if unknown).
func unreadBytes(fd uintptr) int {
	n, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ) // FIONREAD
	if err != nil {
		return 0
	}
	return n
}

// orphanedBytes is, for fd the write end of a pipe with no reader left, how
// many bytes still wait in the pipe: bytes no one has read, and no one can
// read any more. ok is false if a reader may remain, or on error.
//
// On Linux, poll reports POLLERR on a pipe's write end once no read end is
// open anywhere, and FIONREAD reports the bytes buffered in the pipe
// whichever end it is asked on (see TestOrphanedBytes).
func orphanedBytes(fd uintptr) (n int, ok bool) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for {
		_, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, false
		}
		break
	}
	if fds[0].Revents&unix.POLLERR == 0 {
		return 0, false // a reader may remain
	}
	n, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ) // FIONREAD
	if err != nil {
		return 0, false
	}
	return n, true
}
