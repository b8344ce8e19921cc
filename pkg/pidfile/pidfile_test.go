package pidfile_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/resqued/resqued/pkg/pidfile"
)

func TestAcquire(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resqued.pid")

	t.Run("WriteAndRelease", func(t *testing.T) {
		f, err := pidfile.Acquire(path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		if got, want := strings.TrimSpace(string(b)), strconv.Itoa(os.Getpid()); got != want {
			t.Errorf("pidfile holds %q, want %q", got, want)
		}
		if err := f.Release(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pidfile left after release: %v", err)
		}
	})

	t.Run("Stale", func(t *testing.T) {
		// A pid that certainly is gone: a child we started and reaped.
		c := exec.Command("true")
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, []byte(strconv.Itoa(c.Process.Pid)+"\n"), 0o644)
		f, err := pidfile.Acquire(path)
		if err != nil {
			t.Fatalf("stale pidfile not replaced: %v", err)
		}
		f.Release()
	})

	t.Run("Garbage", func(t *testing.T) {
		os.WriteFile(path, []byte("not a pid"), 0o644)
		f, err := pidfile.Acquire(path)
		if err != nil {
			t.Fatalf("garbage pidfile not replaced: %v", err)
		}
		f.Release()
	})

	t.Run("Live", func(t *testing.T) {
		c := exec.Command("sleep", "60")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { c.Process.Kill(); c.Wait() }()
		os.WriteFile(path, []byte(strconv.Itoa(c.Process.Pid)), 0o644)
		_, err := pidfile.Acquire(path)
		if !errors.Is(err, pidfile.ErrRunning) || !strings.Contains(err.Error(), strconv.Itoa(c.Process.Pid)) {
			t.Fatalf("err = %v, want ErrRunning naming pid %d", err, c.Process.Pid)
		}
		b, _ := os.ReadFile(path)
		if strings.TrimSpace(string(b)) != strconv.Itoa(c.Process.Pid) {
			t.Error("a live process's pidfile was overwritten")
		}
	})
}
