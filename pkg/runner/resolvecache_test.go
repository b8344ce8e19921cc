package runner_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/resqued/resqued/pkg/runner"
)

// Resolve remembers a class found by listing the handlers directory
// (Resize -> Resize.sh) so that a busy worker does not list it per job.
// What it remembers must never outlive the directory it came from: a
// second candidate makes the class ambiguous, a lost execute bit makes
// it not executable, a removed file is gone, and an exact name added
// later wins, all at the very next lookup.
func TestResolve_RememberedOnlyWhileUnchanged(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	r, err := runner.New(runner.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	resolvedDir, _ := filepath.EvalSymlinks(dir)
	want := func(path string, wantErr error) {
		t.Helper()
		got, err := r.Resolve("Resize")
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Fatalf("Resolve = %q, %v; want %v", got, err, wantErr)
			}
			return
		}
		if err != nil || got != filepath.Join(resolvedDir, path) {
			t.Fatalf("Resolve = %q, %v; want %s", got, err, path)
		}
	}
	write("Resize.sh", 0o755)
	want("Resize.sh", nil)
	want("Resize.sh", nil) // remembered
	write("Resize.py", 0o755)
	want("", runner.ErrAmbiguous)
	if err := os.Remove(filepath.Join(dir, "Resize.py")); err != nil {
		t.Fatal(err)
	}
	want("Resize.sh", nil)
	if err := os.Chmod(filepath.Join(dir, "Resize.sh"), 0o644); err != nil {
		t.Fatal(err)
	}
	want("", runner.ErrNotExecutable)
	if err := os.Chmod(filepath.Join(dir, "Resize.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	want("Resize.sh", nil)
	write("Resize", 0o755) // the exact name comes first
	want("Resize", nil)
	if err := os.Remove(filepath.Join(dir, "Resize")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "Resize.sh")); err != nil {
		t.Fatal(err)
	}
	want("", runner.ErrNoHandler)
}
