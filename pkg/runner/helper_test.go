package runner

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the handler: a wrapper script in the handlers
// directory execs it with GO_WANT_HELPER_PROCESS=1 and HELPER_MODE set, and
// TestMain then behaves as the handler instead of running tests.

const floodSize = 100 << 20

func TestMain(m *testing.M) {
	if os.Getenv("GO_WANT_HELPER_PROCESS") == "1" {
		os.Exit(helperMain(os.Getenv("HELPER_MODE"), os.Getenv("HELPER_FILE"), os.Getenv("HELPER_ARG")))
	}
	os.Exit(m.Run())
}

// helperMain acts as a handler and returns its exit status.
func helperMain(mode, file, arg string) int {
	switch mode {
	case "cat": // echo stdin to stdout
		if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println()
		return 0
	case "env":
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
		return 0
	case "pwd":
		wd, err := os.Getwd()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(wd)
		return 0
	case "exit": // a few stderr lines, then exit with status arg
		for i := 1; i <= 5; i++ {
			fmt.Fprintf(os.Stderr, "oops %d\n", i)
		}
		code, _ := strconv.Atoi(arg)
		return code
	case "stderr-lines": // arg lines "line NN" to stderr
		n, _ := strconv.Atoi(arg)
		w := bufio.NewWriter(os.Stderr)
		for i := 1; i <= n; i++ {
			fmt.Fprintf(w, "line %02d\n", i)
		}
		w.Flush()
		return 0
	case "sigkill-self":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	case "sleep": // default SIGTERM handling
		writeMarker(file, os.Getpid())
		time.Sleep(time.Minute)
		return 0
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		writeMarker(file, os.Getpid())
		time.Sleep(time.Minute)
		return 0
	case "term-exit": // exit with status arg on SIGTERM
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		writeMarker(file, os.Getpid())
		<-c
		code, _ := strconv.Atoi(arg)
		return code
	case "grandchild": // start a sleeping child that shares stdout/stderr
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), "HELPER_MODE=sleep", "HELPER_ARG=")
		cmd.Stdout = os.Stdout
		cmd.Stderr = os.Stderr
		if strings.Contains(arg, "setsid") {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		}
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if b, err := os.ReadFile(file); err == nil && len(b) > 0 {
				break
			}
		}
		fmt.Println("grandchild started")
		if strings.Contains(arg, "exit") {
			return 0
		}
		time.Sleep(time.Minute)
		return 0
	case "flood": // floodSize bytes of 8 KiB lines to stdout or stderr
		w := os.Stdout
		if arg == "stderr" {
			w = os.Stderr
		}
		line := append(bytes.Repeat([]byte{'x'}, 8<<10-1), '\n')
		bw := bufio.NewWriterSize(w, 1<<20)
		for n := 0; n < floodSize; n += len(line) {
			bw.Write(line)
		}
		bw.Flush()
		return 0
	case "longline": // floodSize bytes without newline to stderr
		chunk := bytes.Repeat([]byte{'y'}, 1<<20)
		for n := 0; n < floodSize; n += len(chunk) {
			os.Stderr.Write(chunk)
		}
		return 0
	case "noread": // never read stdin
		os.Stdin.Close()
		fmt.Println("done")
		return 0
	case "json":
		fmt.Println(`{"level":"warn","msg":"disk low","free":12}`)
		fmt.Println(`{"level":"ERROR","message":"boom"}`)
		fmt.Println(`{"level":"debug"}`)
		fmt.Println(`{"level":"bogus","msg":"x"}`)
		fmt.Println(`plain text`)
		return 0
	case "persistent":
		return helperPersistent(file, arg)
	default:
		fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
		return 2
	}
}

// helperPersistent is a persistent handler. For each job line it appends
// the job's id to file (one line per job it took, so tests count runs from
// the handler's side) and then acts on its first arg:
//
//   - "exit:N": writes to stderr and exits N without a done line;
//   - "double": its done line and a second, stray one, in one write;
//   - "partial": its done line and the start of a stray one in one write,
//     then the rest of that line once the next job is waiting on stdin;
//   - "flood": its done line, then floodSize bytes of lines with "done" in
//     them; creates file.flooded once all were written;
//   - "huge": one done line of floodSize bytes;
//   - "exitnext" or "exitnext:N": its done line, then, once the next job
//     is waiting on stdin, reads N bytes of it (none without ":N") and
//     exits 0;
//   - anything else: {"done":"ok","result":{"id":ID,"pid":PID}}.
//
// With arg "once" it exits 0 after every job's done line.
func helperPersistent(file, arg string) int {
	out := os.NewFile(3, "result")
	in := bufio.NewReader(os.Stdin)
	pid := os.Getpid()
	done := func(id string) string {
		return fmt.Sprintf(`{"done":"ok","result":{"id":%q,"pid":%d}}`+"\n", id, pid)
	}
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return 0 // EOF: leave
		}
		var job struct {
			ID   string   `json:"id"`
			Args []string `json:"args"`
		}
		if err := json.Unmarshal([]byte(line), &job); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		f.WriteString(job.ID + "\n")
		f.Close()
		what := ""
		if len(job.Args) > 0 {
			what = job.Args[0]
		}
		switch {
		case strings.HasPrefix(what, "exit:"):
			fmt.Fprintln(os.Stderr, "leaving without done")
			code, _ := strconv.Atoi(strings.TrimPrefix(what, "exit:"))
			return code
		case what == "double":
			out.WriteString(done(job.ID) + done("stray"))
		case what == "partial":
			stray := done("stray")
			out.WriteString(done(job.ID) + stray[:10])
			if in.Buffered() == 0 {
				fds := []unix.PollFd{{Fd: 0, Events: unix.POLLIN}}
				for {
					if _, err := unix.Poll(fds, -1); err != unix.EINTR {
						break
					}
				}
			}
			out.WriteString(stray[10:])
		case what == "flood":
			out.WriteString(done(job.ID))
			l := fmt.Sprintf(`{"progress":0.5,"message":"done","pad":"%s"}`+"\n", strings.Repeat("x", 60<<10))
			bw := bufio.NewWriterSize(out, 1<<20)
			for n := 0; n < floodSize; n += len(l) {
				if _, err := bw.WriteString(l); err != nil {
					return 1
				}
			}
			if bw.Flush() != nil {
				return 1
			}
			writeMarker(file+".flooded", pid)
		case what == "exitnext" || strings.HasPrefix(what, "exitnext:"):
			n, _ := strconv.Atoi(strings.TrimPrefix(what, "exitnext:"))
			out.WriteString(done(job.ID))
			if in.Buffered() > 0 {
				fmt.Fprintln(os.Stderr, "exitnext: the next job was read already")
				return 2
			}
			fds := []unix.PollFd{{Fd: 0, Events: unix.POLLIN}}
			for {
				if _, err := unix.Poll(fds, -1); err != unix.EINTR {
					break
				}
			}
			if n > 0 {
				if _, err := io.ReadFull(os.Stdin, make([]byte, n)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 2
				}
			}
			return 0
		case what == "huge":
			bw := bufio.NewWriterSize(out, 1<<20)
			bw.WriteString(`{"done":"ok","result":"`)
			chunk := strings.Repeat("y", 1<<20)
			for n := 0; n < floodSize; n += len(chunk) {
				bw.WriteString(chunk)
			}
			bw.WriteString("\"}\n")
			bw.Flush()
		default:
			out.WriteString(done(job.ID))
		}
		if arg == "once" {
			return 0
		}
	}
}

// writeMarker atomically writes pid to file (if set).
func writeMarker(file string, pid int) {
	if file == "" {
		return
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	if err := os.Rename(tmp, file); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

// helper describes a handler backed by the test binary.
type helper struct {
	mode string
	arg  string
	file string // marker / pid file
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeHandler creates an executable wrapper script dir/name that execs the
// test binary in helper mode h.
func writeHandler(tb testing.TB, dir, name string, h helper) string {
	tb.Helper()
	bin, err := os.Executable()
	if err != nil {
		tb.Fatalf("os.Executable: %v", err)
	}
	// GORACE: a race-enabled binary otherwise sleeps 1s when exiting 0.
	script := fmt.Sprintf("#!/bin/sh\nGORACE=atexit_sleep_ms=0 GO_WANT_HELPER_PROCESS=1 HELPER_MODE=%s HELPER_ARG=%s HELPER_FILE=%s exec %s -test.run='^$'\n",
		shellQuote(h.mode), shellQuote(h.arg), shellQuote(h.file), shellQuote(bin))
	return writeScript(tb, dir, name, script)
}

// writeScript creates an executable file dir/name (creating parents).
func writeScript(tb testing.TB, dir, name, script string) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		tb.Fatal(err)
	}
	return path
}

// newTestRunner returns a Runner with short timeouts over a fresh directory
// unless cfg says otherwise.
func newTestRunner(tb testing.TB, cfg Config) *Runner {
	tb.Helper()
	if cfg.Dir == "" {
		cfg.Dir = tb.TempDir()
	}
	if cfg.TermTimeout == 0 {
		cfg.TermTimeout = 200 * time.Millisecond
	}
	r, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return r
}

// waitPidFile polls until file holds a pid and returns it.
func waitPidFile(tb testing.TB, file string) int {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(file); err == nil && len(b) > 0 {
			pid, err := strconv.Atoi(string(b))
			if err != nil {
				tb.Fatalf("pid file %s: %v", file, err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pid file %s not written within deadline", file)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return !errors.Is(err, syscall.ESRCH)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// waitGone polls until pid is no longer alive.
func waitGone(tb testing.TB, pid int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			tb.Fatalf("process %d still alive", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitWithin calls p.Wait and fails the test if it takes longer than d.
func waitWithin(tb testing.TB, p *Process, d time.Duration) (*Result, error) {
	tb.Helper()
	type outcome struct {
		res *Result
		err error
	}
	c := make(chan outcome, 1)
	go func() {
		res, err := p.Wait()
		c <- outcome{res, err}
	}()
	select {
	case o := <-c:
		return o.res, o.err
	case <-time.After(d):
		p.Kill()
		tb.Fatalf("Wait did not return within %s", d)
		return nil, nil
	}
}

// logSink collects JSON log entries written by an hclog.Logger.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(b)
}

func newTestLogger() (hclog.Logger, *logSink) {
	sink := &logSink{}
	return hclog.New(&hclog.LoggerOptions{Output: sink, Level: hclog.Trace, JSONFormat: true}), sink
}

// entries returns the logged entries.
func (s *logSink) entries(tb testing.TB) []map[string]any {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(s.buf.Bytes()))
	for dec.More() {
		var e map[string]any
		if err := dec.Decode(&e); err != nil {
			tb.Fatalf("decode log entry: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// lines returns the messages logged for stream.
func (s *logSink) lines(tb testing.TB, stream string) []string {
	tb.Helper()
	var out []string
	for _, e := range s.entries(tb) {
		if e["stream"] == stream {
			out = append(out, e["@message"].(string))
		}
	}
	return out
}
