package testproc_test

import (
	"os/exec"
	"testing"

	"github.com/resqued/resqued/internal/testproc"
)

// TestProc: a running process is found and killed once; after it has
// exited, Kill sends nothing.
func TestProc(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p, ok := testproc.Find(cmd.Process.Pid)
	if !ok || !p.Running() {
		t.Fatalf("sleep %d not found running", cmd.Process.Pid)
	}
	if !p.Kill() {
		t.Fatal("Kill of a running process sent nothing")
	}
	_ = cmd.Wait()
	if p.Running() || p.Kill() {
		t.Fatal("an exited process is taken for running, or signalled")
	}
	if _, ok := testproc.Find(cmd.Process.Pid); ok {
		t.Log("its pid was already reused: Find names the new process, Running of the old one stays false")
	}
}
