package runner

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

// orphanedBytes counts on two things Linux does for pipes: FIONREAD on the
// write end reports the bytes buffered for the reader, and poll on the
// write end reports POLLERR once no read end is left.
func TestOrphanedBytes(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	defer r.Close()
	count := func() (n, unread int, ok bool) {
		t.Helper()
		rc, err := w.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		if err := rc.Control(func(fd uintptr) { unread = unreadBytes(fd); n, ok = orphanedBytes(fd) }); err != nil {
			t.Fatal(err)
		}
		return n, unread, ok
	}
	if _, err := w.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if _, unread, ok := count(); unread != 100 || ok {
		t.Fatalf("after writing 100 bytes: FIONREAD on the write end %d, want 100; orphaned %v with the reader open, want false", unread, ok)
	}
	if _, err := r.Read(make([]byte, 30)); err != nil {
		t.Fatal(err)
	}
	if _, unread, _ := count(); unread != 70 {
		t.Fatalf("after reading 30: FIONREAD on the write end %d, want 70", unread)
	}
	r.Close()
	if n, _, ok := count(); n != 70 || !ok {
		t.Fatalf("reader closed: orphanedBytes %d, %v; want 70, true", n, ok)
	}
	// And what makes a job line safe to give to a fresh process: a write
	// to a pipe without reader fails with EPIPE, writing nothing.
	if n, err := w.Write([]byte("x")); n != 0 || !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write without reader: %d, %v; want 0, EPIPE", n, err)
	}
}
