//go:build !linux

package runner

import "golang.org/x/sys/unix"

// fionread is FIONREAD, _IOR('f', 127, int), on macOS and the BSDs.
const fionread = 0x4004667f

// unreadBytes is how many bytes wait in the pipe fd (0 if unknown).
func unreadBytes(fd uintptr) int {
	n, err := unix.IoctlGetInt(int(fd), fionread)
	if err != nil {
		return 0
	}
	return n
}
