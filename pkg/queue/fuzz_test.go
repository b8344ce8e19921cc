package queue_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/resqued/resqued/pkg/queue"
)

// FuzzDecode feeds arbitrary queue entries to Decode and to NewFailure,
// which is what the worker does with an entry it cannot run. Seeds: the
// f.Add calls below, the real payloads in testdata/compat/payload, and
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"class":"Echo","args":[1,"two"],"id":"abc"}`,
		`{"class":"Echo"}`,
		`{"class":"Echo","args":null}`,
		`{"class":"Echo","args":{"a":1}}`,
		`{"class":1,"args":[]}`,
		`{"class":"","args":[]}`,
		`{"class":"Echo","args":[],"id":7}`,
		`{"class":`,
		`null`,
		`[1,2]`,
		`42`,
		"",
		"\xff\xfe{\"class\":\"A\"}",
		"{\"class\":\"A\x00\"}",
	} {
		f.Add([]byte(s))
	}
	if files, err := filepath.Glob("../../testdata/compat/payload/*.json"); err == nil {
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil {
				f.Add(b)
			}
		}
	}

	f.Fuzz(func(t *testing.T, payload []byte) {
		orig := bytes.Clone(payload)
		const qname = "fuzzq"
		j, err := queue.Decode(qname, payload)
		if j == nil {
			t.Fatalf("Decode(%q) returned a nil Job (err %v)", orig, err)
		}
		if j.Queue != qname {
			t.Errorf("Queue = %q, want %q", j.Queue, qname)
		}
		if !bytes.Equal(j.Payload, orig) {
			t.Errorf("Payload = %q, want the input %q byte for byte", j.Payload, orig)
		}
		if err != nil {
			if !errors.Is(err, queue.ErrInvalidPayload) {
				t.Errorf("Decode(%q) error %v does not wrap ErrInvalidPayload", orig, err)
			}
		} else {
			if j.Class == "" {
				t.Errorf("Decode(%q) succeeded with an empty Class", orig)
			}
			if len(j.Args) == 0 || j.Args[0] != '[' || !json.Valid(j.Args) {
				t.Errorf("Decode(%q) Args = %q, want a JSON array", orig, j.Args)
			}
		}

		// The failure record made from any entry must be a JSON document
		// (a Resque failed-list entry) that keeps the entry.
		rec, merr := json.Marshal(queue.NewFailure(time.Now(), payload, "X", "e", nil, "h:1:q", "q"))
		if merr != nil {
			t.Fatalf("marshal failure for %q: %v", orig, merr)
		}
		if !json.Valid(rec) {
			t.Fatalf("failure record for %q is not valid JSON: %q", orig, rec)
		}
		var back struct {
			Payload   json.RawMessage `json:"payload"`
			Backtrace json.RawMessage `json:"backtrace"`
		}
		if err := json.Unmarshal(rec, &back); err != nil {
			t.Fatalf("failure record for %q does not decode: %v: %q", orig, err, rec)
		}
		if bt := bytes.TrimSpace(back.Backtrace); len(bt) == 0 || bt[0] != '[' {
			t.Errorf("failure backtrace = %q, want an array", back.Backtrace)
		}
		if json.Valid(orig) {
			// Valid JSON is embedded as itself (for a real entry, an
			// object), only re-compacted by the encoder.
			if tr := bytes.TrimSpace(orig); tr[0] == '{' {
				var obj map[string]json.RawMessage
				if err := json.Unmarshal(back.Payload, &obj); err != nil || obj == nil {
					t.Errorf("failure payload for object %q = %q, want a JSON object (%v)", orig, back.Payload, err)
				}
			}
			if a, b := decodeAny(t, orig), decodeAny(t, back.Payload); !reflect.DeepEqual(a, b) {
				t.Errorf("failure payload = %q, want the same JSON value as %q", back.Payload, orig)
			}
		} else {
			// Anything else is kept as a JSON string (invalid UTF-8 made
			// valid, as any JSON string must be).
			var s string
			if err := json.Unmarshal(back.Payload, &s); err != nil {
				t.Fatalf("failure payload for non-JSON %q = %q, want a JSON string: %v", orig, back.Payload, err)
			}
			if want := strings.ToValidUTF8(string(orig), "\uFFFD"); s != want {
				t.Errorf("failure payload string = %q, want %q", s, want)
			}
		}
	})
}

// decodeAny decodes one JSON value keeping numbers as written, so values
// beyond float64 compare too.
func decodeAny(t *testing.T, b []byte) interface{} {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v interface{}
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// FuzzEncodeRoundTrip checks that what Encode builds, Decode reads back.
func FuzzEncodeRoundTrip(f *testing.F) {
	f.Add("Echo", `[1,"two",{"a":null}]`, "49cfcb79dae947c76d27007cd19ff419")
	f.Add("Mailers::Welcome", `[]`, "")
	f.Add("Ünïcode", " [ 1 , 2 ] ", "id with \"quotes\" <&>")
	f.Add("A\u2028B", `["<script>&amp;\u2029"]`, "x")
	f.Add("Big", `[123456789012345678901234567890, 1e300, -0.0]`, "")
	f.Add("Nested", `[[[[{"a":[[]]}]]]]`, "")

	f.Fuzz(func(t *testing.T, class, args, id string) {
		raw := json.RawMessage(args)
		// The property is about valid input: a non-empty UTF-8 class and
		// id (Encode, like any JSON encoder, replaces invalid UTF-8) and
		// args that is one JSON array, JSON whitespace around it allowed.
		// (Not bytes.TrimSpace: it also strips \v, \f, U+0085 and U+00A0,
		// which JSON does not allow, so "[]\v" is no JSON array.)
		if class == "" || !utf8.ValidString(class) || !utf8.ValidString(id) || !json.Valid(raw) {
			return
		}
		tr := bytes.TrimLeft(raw, " \t\r\n")
		if tr[0] != '[' {
			return
		}
		p, err := queue.Encode(class, raw, id)
		if err != nil {
			t.Fatalf("Encode(%q, %q, %q): %v", class, args, id, err)
		}
		j, err := queue.Decode("q", p)
		if err != nil {
			t.Fatalf("Decode(Encode(%q, %q, %q) = %q): %v", class, args, id, p, err)
		}
		if j.Class != class {
			t.Errorf("class = %q, want %q (payload %q)", j.Class, class, p)
		}
		if j.ID != id {
			t.Errorf("id = %q, want %q (payload %q)", j.ID, id, p)
		}
		var want bytes.Buffer
		if err := json.Compact(&want, tr); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(j.Args, want.Bytes()) {
			t.Errorf("args = %q, want %q (payload %q)", j.Args, want.Bytes(), p)
		}
	})
}
