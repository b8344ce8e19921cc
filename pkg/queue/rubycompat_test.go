package queue_test

import (
	"encoding/json"
	"testing"

	"github.com/resqued/resqued/pkg/queue"
)

// RetryIdentifier is resque-retry's retry_identifier:
// Digest::SHA1.hexdigest(args.join('-')) of the args Ruby's JSON.parse
// made. The digests were computed by Ruby 3.1.2 from the same JSON with
// JSON.parse(j).join('-').
func TestRetryIdentifier(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{`[7,"x"]`, "1b07a4bf1b8d1595ec4f30c716e4409bbfe140a3"},
		{`[]`, ""},
		{`[null]`, ""},
		{`[""]`, ""},
		{`[1.0,1e20,0.0001,1e-5,123456789012345678901234567890,-0.5,true,false,-0]`, "cb7291593bffdb0455a198dc85bb73573c00bf95"},
		{`[[1,[2,3]],"a b",[]]`, "68c0af8c8158d96e2c4a93b096734cd8fd7988d3"},
		{`[{"name":"Chris","n":[1,"x",null,2.5],"z":null,"q":"a\"#{b}\n\t\u0001é#x","b":true,"h":{"k":[]}}]`, "6c4ecb04d278140a79435e6f5f2f512501d9186e"},
		{`[1e16,1e15,12345.678,1e-4,0.001,-1e100,5e-324,1.7976931348623157e308]`, "9ff0e3d225e03086a0e398dd9efa1da8f2f75f26"},
		{`[123456789012345.0,1234567890123456.0,1e-5,100.0]`, "b947d059418de4ca0b51ab965839add2f7fdf0e3"},
		{`["ünïcödé","\u00e9"]`, "8ac07a9b4871956a48ba423103430dbf192ebeca"},
	} {
		got, err := queue.RetryIdentifier(json.RawMessage(tc.args))
		if err != nil || got != tc.want {
			t.Errorf("RetryIdentifier(%s) = %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
}

// RetryAttemptKey is resque-retry's redis_retry_key under the namespace.
func TestRetryAttemptKey(t *testing.T) {
	if got, want := queue.RetryAttemptKey("resque", "Mailers::Welcome", "1b07a4bf1b8d1595ec4f30c716e4409bbfe140a3"),
		"resque:resque-retry:Mailers::Welcome:1b07a4bf1b8d1595ec4f30c716e4409bbfe140a3"; got != want {
		t.Errorf("key = %q, want %q", got, want)
	}
	if got, want := queue.RetryAttemptKey("resque", "Tick", ""), "resque:resque-retry:Tick"; got != want {
		t.Errorf("key without args = %q, want %q", got, want)
	}
}

// DelayedStatusDigest ignores what a Ruby scheduler changes when it
// writes the args back: whitespace and \u escapes.
func TestDelayedStatusDigest(t *testing.T) {
	a := queue.DelayedStatusDigest("q", "C", json.RawMessage(`[ 7, "\u00e9", {"a": 1} ]`))
	b := queue.DelayedStatusDigest("q", "C", json.RawMessage(`[7,"é",{"a":1}]`))
	if a != b {
		t.Errorf("digests differ: %s %s", a, b)
	}
	if c := queue.DelayedStatusDigest("other", "C", json.RawMessage(`[7,"é",{"a":1}]`)); c == a {
		t.Error("the queue is not part of the digest")
	}
}
