package queue_test

import (
	"testing"

	"github.com/resqued/resqued/pkg/queue"
)

// DelayedItem keeps the payload's bytes and adds "queue" last, as
// resque-scheduler's job_to_hash_with_queue ({class:, args:, queue:}).
func TestDelayedItem(t *testing.T) {
	for _, tc := range []struct{ name, q, payload, want string }{
		{"Ruby", "mail", `{"class":"SendMail","args":[42,"x"]}`, `{"class":"SendMail","args":[42,"x"],"queue":"mail"}`},
		{"FieldOrderKept", "q", `{"id":"t","args":[],"class":"C","zz":{"b":1,"a":2}}`, `{"id":"t","args":[],"class":"C","zz":{"b":1,"a":2},"queue":"q"}`},
		{"NumbersKept", "q", `{"class":"C","args":[1e700,9007199254740993,1.50]}`, `{"class":"C","args":[1e700,9007199254740993,1.50],"queue":"q"}`},
		{"EscapesKept", "q", `{"class":"C","args":["\u00e9<&>\/"]}`, `{"class":"C","args":["\u00e9<&>\/"],"queue":"q"}`},
		{"SpacingKept", "q", ` { "class" : "C" ,  "args": [ ] } `, `{ "class" : "C" ,  "args": [ ],"queue":"q"}`},
		{"QueueReplaced", "new", `{"class":"C","queue":"old","args":[]}`, `{"class":"C","args":[],"queue":"new"}`},
		{"QueueFirstReplaced", "new", `{"queue":"old","class":"C","args":[]}`, `{"class":"C","args":[],"queue":"new"}`},
		{"QueueNotHTMLEscaped", "a<b", `{"class":"C","args":[]}`, `{"class":"C","args":[],"queue":"a<b"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := queue.DelayedItem(tc.q, []byte(tc.payload))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("DelayedItem(%q, %s)\n got %s\nwant %s", tc.q, tc.payload, got, tc.want)
			}
		})
	}
	for _, bad := range []string{``, `[]`, `"x"`, `null`, `{"class":"C"`, `{"class":"C"} {}`} {
		if got, err := queue.DelayedItem("q", []byte(bad)); err == nil {
			t.Errorf("DelayedItem(%q) = %s, want an error", bad, got)
		}
	}
}

// RetryItem sets "attempt" in place, or adds it before "queue", and puts
// back a token the payload lacks.
func TestRetryItem(t *testing.T) {
	for _, tc := range []struct {
		name, payload, id, want string
	}{
		{"Added", `{"class":"A","args":[1],"id":"tok"}`, "tok", `{"class":"A","args":[1],"id":"tok","attempt":2,"queue":"q"}`},
		{"InPlace", `{"class":"A","attempt":1,"args":[1],"retry":{"attempts":3}}`, "", `{"class":"A","attempt":2,"args":[1],"retry":{"attempts":3},"queue":"q"}`},
		{"TokenRestored", `{"class":"A","args":[]}`, "tok", `{"class":"A","args":[],"id":"tok","attempt":2,"queue":"q"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := queue.Decode("q", []byte(tc.payload))
			if err != nil {
				t.Fatal(err)
			}
			j.ID = tc.id
			got, err := queue.RetryItem(j, 2)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("RetryItem(%s)\n got %s\nwant %s", tc.payload, got, tc.want)
			}
		})
	}
}
