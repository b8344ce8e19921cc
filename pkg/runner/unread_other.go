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

// orphanedBytes would be, for fd the write end of a pipe with no reader
// left, how many bytes still wait in it. Elsewhere than on Linux it is not
// known whether FIONREAD on a write end counts the bytes buffered for the
// reader, nor whether poll reports a pipe without readers, so it cannot
// tell: ok is always false.
func orphanedBytes(fd uintptr) (n int, ok bool) { return 0, false }
