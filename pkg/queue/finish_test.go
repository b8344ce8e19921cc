package queue_test

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

// FinishJob writes a tracked job's final status and its detail (the
// failure's error, or the handler's result) in the script that records
// the outcome; the failure record is built from the reserved job and the
// outcome, in Ruby Resque's field order.
func TestClient_FinishJobStatusDetail(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	id := "h:1:q"
	for _, tok := range []string{"tok-fail", "tok-ok"} {
		p, _ := queue.Encode("A", json.RawMessage(`[1]`), tok)
		if err := c.Enqueue(ctx, "q", p, queue.EnqueueOptions{Track: true, ID: tok}); err != nil {
			t.Fatal(err)
		}
	}
	f := c.Fetcher(id)
	defer f.Close()

	r, err := f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{})
	if err != nil || r.ID != "tok-fail" || r.Worker != id {
		t.Fatalf("reserve = %+v %v", r, err)
	}
	if err := r.Decode(); err != nil || r.Class != "A" || string(r.Args) != "[1]" || r.ID != "tok-fail" {
		t.Fatalf("decode = %+v %v", r.Job, err)
	}
	o := queue.Outcome{Exception: "Boom", Error: `bad "x" <y>`, Backtrace: []string{"a.sh:1"}, At: time.Date(2026, 11, 27, 8, 50, 9, 0, time.UTC)}
	if ok, err := c.FinishJob(ctx, r, o); !ok || err != nil {
		t.Fatalf("FinishJob = %v %v", ok, err)
	}
	st, _ := redis.String(srv.Do(t, "GET", status.Key(ns, "tok-fail")), nil)
	if !regexp.MustCompile(`^\{"status":3,"updated":\d+,"started":\d+,"error":"Boom: bad \\"x\\" \\u003cy\\u003e"\}$`).MatchString(st) {
		t.Errorf("failed status = %s", st)
	}
	if ttl, _ := redis.Int(srv.Do(t, "TTL", status.Key(ns, "tok-fail")), nil); ttl <= 0 {
		t.Errorf("failed status ttl = %d, want 24 h", ttl)
	}
	rec, _ := redis.String(srv.Do(t, "LINDEX", queue.FailedKey(ns), 0), nil)
	if want := `{"failed_at":"2026/11/27 08:50:09 UTC","payload":{"class":"A","args":[1],"id":"tok-fail"},"exception":"Boom","error":"bad \"x\" <y>","backtrace":["a.sh:1"],"worker":"h:1:q","queue":"q"}`; rec != want {
		t.Errorf("failure record\n got  %s\n want %s", rec, want)
	}

	if r, err = f.Reserve(ctx, []string{"q"}, queue.ReserveOptions{}); err != nil || r.ID != "tok-ok" {
		t.Fatalf("reserve = %+v %v", r, err)
	}
	if ok, err := c.FinishJob(ctx, r, queue.Outcome{Result: json.RawMessage(`{"w": 200}`)}); !ok || err != nil {
		t.Fatalf("FinishJob = %v %v", ok, err)
	}
	st, _ = redis.String(srv.Do(t, "GET", status.Key(ns, "tok-ok")), nil)
	if !regexp.MustCompile(`^\{"status":4,"updated":\d+,"started":\d+,"result":\{"w":200\}\}$`).MatchString(st) {
		t.Errorf("complete status = %s", st)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.FailedKey(ns)), nil); n != 1 {
		t.Errorf("%d failure records, want 1", n)
	}
}
