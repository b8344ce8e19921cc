// Package pidfile writes a daemon's pid file and refuses to start a second
// daemon on the same file. A file left by a process that is gone (a crash,
// a kill -9) is replaced.
package pidfile

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrRunning is returned when the pid file names a live process.
var ErrRunning = errors.New("already running")

// File is a pid file this process holds.
type File struct {
	path string
	pid  int
}

// Acquire writes the current pid to path. It fails with ErrRunning if
// path names another live process, and replaces a stale file.
func Acquire(path string) (*File, error) {
	pid := os.Getpid()
	for attempt := 0; attempt < 3; attempt++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, werr := fmt.Fprintf(f, "%d\n", pid)
			cerr := f.Close()
			if werr != nil || cerr != nil {
				os.Remove(path)
				return nil, fmt.Errorf("write pidfile %s: %w", path, errors.Join(werr, cerr))
			}
			return &File{path: path, pid: pid}, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create pidfile %s: %w", path, err)
		}
		other, err := read(path)
		if err == nil && other != pid && alive(other) {
			return nil, fmt.Errorf("pidfile %s: %w as pid %d", path, ErrRunning, other)
		}
		// Stale (or unreadable garbage): replace it.
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale pidfile %s: %w", path, err)
		}
	}
	return nil, fmt.Errorf("create pidfile %s: it keeps reappearing", path)
}

// Release removes the file if it still holds this process's pid.
func (f *File) Release() error {
	if pid, err := read(f.path); err != nil || pid != f.pid {
		return nil
	}
	if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pidfile %s: %w", f.path, err)
	}
	return nil
}

func read(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// alive reports whether pid is a running process (a zombie counts as gone).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return false
		}
	}
	return true
}
