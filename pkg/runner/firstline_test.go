package runner

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestFirstLine_Messages: a handler the kernel refuses with a misleading
// "no such file or directory" or "exec format error" is named for what
// is wrong with its first line, by `resqued handlers` (Inventory) and in
// the job's failure (Start).
func TestFirstLine_Messages(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, Config{})
	for _, tc := range []struct {
		class, script, want string
		errno               syscall.Errno
	}{
		{"Crlf", "#!/bin/sh\r\necho hi\r\n", "handler Crlf's first line ends in a carriage return (CRLF line endings); convert it with dos2unix", syscall.ENOENT},
		{"NoShebang", "echo hi\n", "handler NoShebang has no #! line and is not a binary; start it with an interpreter line such as #!/bin/sh", syscall.ENOEXEC},
		{"BadInterp", "#!/nonexistent/interpreter -x\n", "handler BadInterp's #! line names /nonexistent/interpreter, which does not exist", syscall.ENOENT},
	} {
		path := writeScript(t, r.Dir(), tc.class, tc.script)
		p, err := r.Start(context.Background(), Job{Class: tc.class})
		if err == nil {
			p.Kill()
			t.Errorf("%s: Start succeeded, want an error", tc.class)
			continue
		}
		if got, want := err.Error(), "start handler "+path+": "+tc.want+" (fork/exec "+path+": "+tc.errno.Error()+")"; got != want {
			t.Errorf("%s: Start error\n got %s\nwant %s", tc.class, got, want)
		}
		if !errors.Is(err, tc.errno) {
			t.Errorf("%s: Start error %v does not wrap %v", tc.class, err, tc.errno)
		}
	}
	writeScript(t, r.Dir(), "Fine.sh", "#!/bin/sh\nexit 0\n")
	self, err := os.Executable() // an ELF binary
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	writeScript(t, r.Dir(), "Binary", string(bin))
	entries, err := r.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Path] = e.Problem
	}
	for path, want := range map[string]string{
		"Crlf":      "first line ends in a carriage return",
		"NoShebang": "has no #! line",
		"BadInterp": "/nonexistent/interpreter, which does not exist",
		"Fine.sh":   "",
		"Binary":    "",
	} {
		if want == "" && got[path] != "" || !strings.Contains(got[path], want) {
			t.Errorf("Inventory %s: problem %q, want %q", path, got[path], want)
		}
	}
}
