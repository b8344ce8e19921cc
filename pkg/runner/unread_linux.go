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
