package queue_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/resqued/resqued/pkg/queue"
)

func TestDecode(t *testing.T) {
	t.Run("Golden", func(t *testing.T) {
		// Payloads exactly as Ruby Resque and php-resque wrote them.
		files, _ := filepath.Glob("../../testdata/compat/payload/*.json")
		if len(files) == 0 {
			t.Fatal("no golden payloads")
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			j, err := queue.Decode("q", raw)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if !bytes.Equal(j.Payload, raw) {
				t.Errorf("%s: payload not kept verbatim", f)
			}
			var want struct {
				Class string          `json:"class"`
				Args  json.RawMessage `json:"args"`
				ID    string          `json:"id"`
			}
			_ = json.Unmarshal(raw, &want)
			if j.Class != want.Class || string(j.Args) != string(want.Args) || j.ID != want.ID {
				t.Errorf("%s: got class=%q args=%s id=%q", f, j.Class, j.Args, j.ID)
			}
		}
	})
	t.Run("NoArgs", func(t *testing.T) {
		for _, raw := range []string{`{"class":"A"}`, `{"class":"A","args":null}`} {
			j, err := queue.Decode("q", []byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(j.Args), "[]"; got != want {
				t.Errorf("%s: args = %s, want %s", raw, got, want)
			}
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		for _, raw := range []string{
			``, `not json`, `{"class":"A"`, `null`, `[]`, `"str"`, `42`,
			`{"args":[]}`, `{"class":42,"args":[]}`, `{"class":"","args":[]}`,
			`{"class":"A","args":{"a":1}}`, `{"class":"A","args":"x"}`, `{"class":"A","args":5}`,
		} {
			j, err := queue.Decode("q", []byte(raw))
			if !errors.Is(err, queue.ErrInvalidPayload) {
				t.Errorf("%q: err = %v, want ErrInvalidPayload", raw, err)
			}
			if j == nil || string(j.Payload) != raw || j.Queue != "q" {
				t.Errorf("%q: job must still carry queue and payload, got %+v", raw, j)
			}
		}
	})
}

// TestDecode_Messages pins what a failure record says about a payload
// that is not a job: the field, and what was expected, in JSON's words.
func TestDecode_Messages(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`[]`, `payload is a JSON array, not an object with "class" and "args"`},
		{`"str"`, `payload is a JSON string, not an object with "class" and "args"`},
		{`42`, `payload is a JSON number, not an object with "class" and "args"`},
		{`null`, `payload is null, not an object with "class" and "args"`},
		{``, `payload is empty`},
		{`not json`, `payload is not valid JSON: found 'o' at byte 2, in a word that is not true, false or null; text must be in double quotes`},
		{`{"class":"A"`, `payload is not valid JSON: it ends after 12 bytes, before the JSON value is complete`},
		{`{"args":[]}`, `payload has no "class" field`},
		{`{"class":42,"args":[]}`, `payload's "class" is 42, not a string`},
		{`{"class":"","args":[]}`, `payload's "class" is empty`},
		{`{"class":"A","args":{"a":1}}`, `payload's "args" is {"a":1}, not an array`},
	} {
		_, err := queue.Decode("q", []byte(tc.in))
		if !errors.Is(err, queue.ErrInvalidPayload) {
			t.Errorf("%q: err = %v, want ErrInvalidPayload", tc.in, err)
			continue
		}
		if got := err.Error(); got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

func TestEncode(t *testing.T) {
	b, err := queue.Encode("Mailers::Welcome", json.RawMessage(`[{"to":"<a@b>"},2]`), "abc")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"class":"Mailers::Welcome","args":[{"to":"<a@b>"},2],"id":"abc"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	b, _ = queue.Encode("A", nil, "")
	if got, want := string(b), `{"class":"A","args":[]}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := queue.Encode("A", json.RawMessage(`{"a":1}`), ""); err == nil {
		t.Error("args object accepted")
	}
	b, _ = queue.EncodeTraced("A", nil, "abc", queue.Trace{})
	if got, want := string(b), `{"class":"A","args":[],"id":"abc"}`; got != want {
		t.Errorf("without a trace: got %s, want %s", got, want)
	}
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	b, _ = queue.EncodeTraced("A", nil, "abc", queue.Trace{Parent: tp, State: "rojo=1"})
	if got, want := string(b), `{"class":"A","args":[],"id":"abc","traceparent":"`+tp+`","tracestate":"rojo=1"}`; got != want {
		t.Errorf("with a trace: got %s, want %s", got, want)
	}
	if j, err := queue.Decode("q", b); err != nil || j.Traceparent != tp || j.Tracestate != "rojo=1" {
		t.Errorf("Decode(%s) = %+v, %v", b, j, err)
	}
}

func TestFailure_Golden(t *testing.T) {
	raw, err := os.ReadFile("../../testdata/compat/failed/ruby.json")
	if err != nil {
		t.Fatal(err)
	}
	var f queue.Failure
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	// Re-encoding Ruby's own record must give Ruby's bytes: same keys,
	// same order.
	now, _ := time.Parse(queue.FailedAtFormat, f.FailedAt)
	g := queue.NewFailure(now, f.Payload, f.Exception, f.Error, f.Backtrace, f.Worker, f.Queue)
	got, _ := json.Marshal(g)
	if string(got) != string(raw) {
		t.Errorf("re-encoded failure differs:\n got %s\nwant %s", got, raw)
	}
}

func TestNewFailure_InvalidPayloadKept(t *testing.T) {
	f := queue.NewFailure(time.Now(), []byte(`{"class":`), "X", "bad", nil, "h:1:q", "q")
	b, _ := json.Marshal(f)
	var back struct {
		Payload   string   `json:"payload"`
		Backtrace []string `json:"backtrace"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("record is not JSON: %v: %s", err, b)
	}
	if back.Payload != `{"class":` {
		t.Errorf("payload = %q, want the raw entry as a string", back.Payload)
	}
	if back.Backtrace == nil {
		t.Error("backtrace must be an array, got null")
	}
}

func TestExpandQueues(t *testing.T) {
	all := []string{"a", "default", "high", "high_x", "low", "z"}
	for _, tc := range []struct {
		specs []string
		want  string
	}{
		{[]string{"high", "low"}, "high,low"},
		{[]string{"*"}, "a,default,high,high_x,low,z"},
		{[]string{"high", "*"}, "high,a,default,high_x,low,z"},
		{[]string{"*", "low"}, "a,default,high,high_x,z,low"},
		{[]string{"high*", "low"}, "high,high_x,low"},
		{[]string{"*", "!high*"}, "a,default,low,z"},
		{[]string{"new", "*"}, "new,a,default,high,high_x,low,z"},
		{[]string{"high", "high"}, "high"},
	} {
		got := queue.ExpandQueues(tc.specs, all)
		if s := join(got); s != tc.want {
			t.Errorf("ExpandQueues(%v) = %s, want %s", tc.specs, s, tc.want)
		}
	}
}

func join(s []string) string {
	out := ""
	for i, q := range s {
		if i > 0 {
			out += ","
		}
		out += q
	}
	return out
}

func TestWorkerID(t *testing.T) {
	id := queue.WorkerID("vm", 1704, []string{"high", "*"})
	if id != "vm:1704:high,*" {
		t.Fatalf("id = %q", id)
	}
	host, pid, qs, err := queue.ParseWorkerID(id)
	if err != nil || host != "vm" || pid != 1704 || join(qs) != "high,*" {
		t.Errorf("ParseWorkerID = %q %d %v %v", host, pid, qs, err)
	}
	if _, _, _, err := queue.ParseWorkerID("vm:12:"); err == nil {
		t.Error("empty queue part accepted")
	}
}

// The hand-built encoding must be byte for byte what json.Marshal gives
// for the struct, for payloads that are already compact.
func TestFailure_EncodeMatchesMarshal(t *testing.T) {
	for _, p := range []string{`{"class":"A","args":[1,"<b>"]}`, `not json`, ``} {
		f := queue.NewFailure(time.Date(2026, 11, 27, 8, 50, 9, 0, time.UTC), []byte(p), "E", "msg \"quoted\" <x>", []string{"a", "b"}, "h:1:q", "q")
		want, _ := json.Marshal(f)
		got, err := queue.EncodeFailure(f)
		if err != nil {
			t.Fatal(err)
		}
		// json.Marshal escapes <, > and & for HTML; the record does not.
		want = bytes.ReplaceAll(bytes.ReplaceAll(want, []byte(`\u003c`), []byte("<")), []byte(`\u003e`), []byte(">"))
		if !bytes.Equal(got, want) {
			t.Errorf("payload %q:\n got %s\nwant %s", p, got, want)
		}
	}
}

// TestDecode_TraceContext: the payload's top-level "traceparent" and
// "tracestate" (as OpenTelemetry's Ruby Resque instrumentation injects
// them) are read raw; an invalid or non-string one never rejects the
// payload.
func TestDecode_TraceContext(t *testing.T) {
	for _, c := range []struct{ payload, parent, state string }{
		{`{"class":"A","args":[],"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"rojo=1"}`,
			"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=1"},
		{`{"class":"A","args":[],"traceparent":"not one"}`, "not one", ""},
		{`{"class":"A","args":[],"traceparent":7,"tracestate":null}`, "", ""},
		{`{"class":"A","args":[]}`, "", ""},
	} {
		j, err := queue.Decode("q", []byte(c.payload))
		if err != nil {
			t.Errorf("Decode(%s): %v", c.payload, err)
			continue
		}
		if j.Traceparent != c.parent || j.Tracestate != c.state {
			t.Errorf("Decode(%s): traceparent %q, tracestate %q; want %q, %q", c.payload, j.Traceparent, j.Tracestate, c.parent, c.state)
		}
	}
}
