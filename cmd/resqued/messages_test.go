package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/runner"
)

// TestBuildArgs_Messages pins what enqueue and try say about a bad
// --args: the flag, what it is and what it must be.
func TestBuildArgs_Messages(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{`{"a":1}`, `--args is a JSON object, not a JSON array`},
		{`"x"`, `--args is a JSON string, not a JSON array`},
		{`42`, `--args is a JSON number, not a JSON array`},
		{`null`, `--args is null, not a JSON array`},
		{`hello`, `--args is not valid JSON: found 'h' at byte 1, where a value was expected`},
		{`thing`, `--args is not valid JSON: found 'h' at byte 2, in a word that is not true, false or null; text must be in double quotes`},
		{`[1, two]`, `--args is not valid JSON: found 'w' at byte 6, in a word that is not true, false or null; text must be in double quotes`},
		{`[1`, `--args is not valid JSON: it ends after 2 bytes, before the JSON value is complete`},
	} {
		_, err := buildArgs(tc.args, nil)
		if err == nil {
			t.Errorf("--args %s: no error", tc.args)
			continue
		}
		if got := err.Error(); got != tc.want {
			t.Errorf("--args %s:\n got %s\nwant %s", tc.args, got, tc.want)
		}
	}
}

// TestParseBulkLine_Messages pins what enqueue --stdin says about a bad
// line.
func TestParseBulkLine_Messages(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`not json`, `line 3 is not valid JSON: found 'o' at byte 2, in a word that is not true, false or null; text must be in double quotes`},
		{`[1]`, `line 3 is a JSON array, not an object {"class":"C","args":[...],"queue":"q"}`},
		{`{"class":"A","qeue":"typo"}`, `line 3 has an unknown field "qeue"; a line has only "class", "args" and "queue"`},
		{`{"class":42}`, `line 3: "class" is a JSON number, not a string`},
		{`{"args":[]}`, `line 3 has no "class"; want an object {"class":"C","args":[...],"queue":"q"}`},
		{`{"class":"../etc/passwd"}`, `line 3: invalid class name "../etc/passwd": a class name is Ruby constants joined by "::" (letters, digits, _), with no "/"`},
		{`{"class":"A","args":{"not":"array"}}`, `line 3: "args" is a JSON object, not an array`},
		{`{"class":"A","args":null}`, `line 3: "args" is null, not an array`},
		{`{"class":"A","queue":"a,b"}`, `line 3: queue name "a,b": must not contain a comma, colon or whitespace`},
		{`{"class":"A"} {"class":"B"}`, `line 3 has more than one JSON value; want one JSON object per line`},
	} {
		_, err := parseBulkLine([]byte(tc.line), 3, "default", queue.Trace{})
		if err == nil {
			t.Errorf("%s: no error", tc.line)
			continue
		}
		if got := err.Error(); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.line, got, tc.want)
		}
	}
}

// TestHandlersDirError_Messages: the message says where resqued looked
// (absolute) and the hint how to point it elsewhere, never the default
// that just failed.
func TestHandlersDirError_Messages(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	const hint = " --handlers DIR (or RESQUED_HANDLERS=DIR), DIR holding one executable per job class"
	for _, tc := range []struct{ prefix, invocation, dir, msg string }{
		{"handlers: ", "resqued handlers", "./handlers", "handlers: no handlers directory at " + filepath.Join(cwd, "handlers") + " (--handlers ./handlers)"},
		{"try: ", "resqued try", filepath.Join(tmp, "none"), "try: no handlers directory at " + filepath.Join(tmp, "none") + " (--handlers " + filepath.Join(tmp, "none") + ")"},
		{"", "resqued", file, file + " is not a directory (--handlers " + file + ")"},
	} {
		_, rerr := runner.New(runner.Config{Dir: tc.dir})
		if rerr == nil {
			t.Fatalf("runner.New(%q) succeeded", tc.dir)
		}
		var ue *usageError
		if !errors.As(handlersDirError(tc.prefix, tc.invocation, tc.dir, rerr), &ue) {
			t.Fatalf("not a usageError")
		}
		if ue.msg != tc.msg || ue.hint != tc.invocation+hint {
			t.Errorf("%s:\n got %s / Try: %s\nwant %s / Try: %s", tc.dir, ue.msg, ue.hint, tc.msg, tc.invocation+hint)
		}
		if strings.Contains(ue.hint, "./handlers") {
			t.Errorf("hint %q repeats the default", ue.hint)
		}
	}
}

// TestMisplacedFlags_Messages: an enqueue flag after the class is the
// job's argument; the warning says so and shows the command that means
// the flag.
func TestMisplacedFlags_Messages(t *testing.T) {
	flags := enqueueCommand().Flags
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"hello", "42"}, nil},
		{[]string{"-1", "--", "--queue"}, nil},
		{[]string{"--queue", "foo"}, []string{`warning: "--queue" after the class is passed to the job as an argument; put enqueue's flags before the class: resqued enqueue --queue foo Echo`}},
		{[]string{"hi", "-q", "foo", "there"}, []string{`warning: "-q" after the class is passed to the job as an argument; put enqueue's flags before the class: resqued enqueue -q foo Echo hi there`}},
		{[]string{"--in=90s", "x y"}, []string{`warning: "--in=90s" after the class is passed to the job as an argument; put enqueue's flags before the class: resqued enqueue --in=90s Echo 'x y'`}},
		{[]string{"--track", "--at", "2026-12-01T10:00:00Z"}, []string{
			`warning: "--track" after the class is passed to the job as an argument; put enqueue's flags before the class: resqued enqueue --track --at 2026-12-01T10:00:00Z Echo`,
			`warning: "--at" after the class is passed to the job as an argument; put enqueue's flags before the class: resqued enqueue --track --at 2026-12-01T10:00:00Z Echo`,
		}},
		{[]string{"--not-a-flag", "-5"}, nil},
	} {
		got := misplacedFlags(flags, "resqued enqueue", "Echo", tc.args)
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%q:\n got %q\nwant %q", tc.args, got, tc.want)
		}
	}
}

// TestReadyLine: the daemon's ready line says what runs and the command
// that gives it work, with only the flags that differ from enqueue's
// defaults.
func TestReadyLine(t *testing.T) {
	for _, tc := range []struct {
		workers       int
		queues        []string
		redis, ns, cl string
		want          string
	}{
		{2, []string{"*"}, "redis://127.0.0.1:6379/0", "resque", "Echo",
			"resqued is ready: 2 workers on queues * with handlers /srv/h. From another terminal: bin/resqued enqueue Echo hello"},
		{1, []string{"high", "low"}, "", "resque", "Echo",
			"resqued is ready: 1 worker on queues high,low with handlers /srv/h. From another terminal: bin/resqued enqueue --queue high Echo hello"},
		{1, []string{"mail*", "!mail_slow"}, "redis://10.0.0.5:6380/2", "app", "Mailers::Welcome",
			"resqued is ready: 1 worker on queues mail*,!mail_slow with handlers /srv/h. From another terminal: bin/resqued enqueue --redis redis://10.0.0.5:6380/2 --namespace app Mailers::Welcome hello"},
	} {
		if got := readyLine(tc.workers, tc.queues, "/srv/h", "bin/resqued", tc.redis, tc.ns, tc.cl); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}
