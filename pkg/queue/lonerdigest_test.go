package queue_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/resqued/resqued/internal/testskip"
	"github.com/resqued/resqued/pkg/queue"
)

// lonerCases are jobs whose resque-loner digest was computed once with
// testdata/loner/redis_key.rb (resque-loner 1.3.0's redis_key, the json
// gem 2.6.1 standing in for MultiJson, Ruby 3.1.2); TestUniqueDigest_Ruby
// computes them again wherever ruby is installed.
var lonerCases = []struct {
	class, args, md5 string
}{
	{"Foo", `[]`, "03a91385535bfd96a15d0156a61391f5"},
	{"Foo", `[1,"two",null,true]`, "1f08cfd1c68a4cdd4a83d9f49b9078f8"},
	// A top-level hash becomes its sorted pairs; nested ones keep their order.
	{"Mailer::Deliver", `[{"b":1,"a":{"d":1,"c":2}},[{"z":1,"y":2}]]`, "ad876f0521e72aed3bdbd69edb385fb9"},
	// Floats as Float#to_s writes them; big integers exact.
	{"F", `[1e2, 1.50, -0, -0.0, 1e15, 123456789012345.0, 9.999e-5, 0.0001, 12345678901234567890123]`, "62c4ffa7b8889729f24e9fe04c6024e3"},
	// No escaping of "/", HTML or non-ASCII; control characters as Ruby escapes them.
	{"F", `["a/b <>& é€😀 \u2028", "\u0001\u001f\b\f\n\r\t\"\\"]`, "01060d783f57dafd2d702cb7f57a6521"},
}

// UniqueDigest hashes what resque-loner hashes, byte for byte.
func TestUniqueDigest(t *testing.T) {
	for _, c := range lonerCases {
		got, err := queue.UniqueDigest(c.class, json.RawMessage(c.args))
		if err != nil {
			t.Errorf("UniqueDigest(%s, %s): %v", c.class, c.args, err)
			continue
		}
		if got != c.md5 {
			t.Errorf("UniqueDigest(%s, %s) = %s, want %s", c.class, c.args, got, c.md5)
		}
	}
	// Spacing and key order inside nested values as written do not matter
	// at the top level's hashes, as in Ruby.
	a, _ := queue.UniqueDigest("C", json.RawMessage(`[{"a":1,"b":2}]`))
	b, _ := queue.UniqueDigest("C", json.RawMessage(` [ { "b" : 2 , "a" : 1 } ] `))
	if a != b {
		t.Errorf("digests of one hash in two orders differ: %s, %s", a, b)
	}
	for _, bad := range []string{`{"a":1}`, `[1e400]`, `[1] [2]`} {
		if _, err := queue.UniqueDigest("C", json.RawMessage(bad)); err == nil {
			t.Errorf("UniqueDigest(C, %s): no error", bad)
		}
	}
}

// Where ruby is installed, resque-loner's own algorithm agrees with the
// golden digests, and with UniqueDigest on a few more payloads.
func TestUniqueDigest_Ruby(t *testing.T) {
	if _, err := exec.LookPath("ruby"); err != nil {
		testskip.Skipf(t, "ruby is not installed: the digests are checked against the values recorded in lonerCases only")
	}
	more := []struct{ class, args string }{
		{"Deep", `[{"k":[{"y":1,"x":[1.25,2e-7]}],"a":"b"},{"z":null}]`},
		{"Big", `[-1.5e300, 0.1, 3.0, 1e16, 1234567.0, 42, -7]`},
		{"Esc", `["tab\there", "\u007f", "quote\"", "\u00e9"]`},
		{"Dup", `[{"a":1,"b":2,"a":3}]`},
	}
	var in bytes.Buffer
	var want []string
	for _, c := range lonerCases {
		in.WriteString(`{"class":"` + c.class + `","args":` + c.args + "}\n")
		want = append(want, c.md5)
	}
	for _, c := range more {
		in.WriteString(`{"class":"` + c.class + `","args":` + c.args + "}\n")
		d, err := queue.UniqueDigest(c.class, json.RawMessage(c.args))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, d)
	}
	cmd := exec.Command("ruby", "testdata/loner/redis_key.rb")
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ruby redis_key.rb: %v", err)
	}
	got := strings.Fields(string(out))
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ruby's digests:\n%v\nwant (golden, then UniqueDigest's):\n%v", got, want)
	}
}
