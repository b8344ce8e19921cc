package delayed_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/hashicorp/go-hclog"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/delayed"
	"github.com/resqued/resqued/pkg/queue"
)

func strs(tb testing.TB, v interface{}) []string {
	tb.Helper()
	s, err := redis.Strings(v, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func exists(tb testing.TB, srv *redistest.Server, key string) bool {
	tb.Helper()
	n, _ := redis.Int(srv.Do(tb, "EXISTS", key), nil)
	return n == 1
}

// TestScheduler_RubyLayout writes a delayed job exactly as Ruby's
// Resque.enqueue_at_with_queue('mail', Time.at(1795769182), SendMail, 42, 'x')
// does (delayed_push), and checks resqued's own Delay writes the same bytes
// and MoveDue moves it.
func TestScheduler_RubyLayout(t *testing.T) {
	srv := redistest.Start(t)
	ns := redistest.Namespace(t)
	const ts = 1795769182
	const item = `{"class":"SendMail","args":[42,"x"],"queue":"mail"}`
	// delayed_push, verbatim.
	srv.Do(t, "RPUSH", ns+":delayed:1795769182", item)
	srv.Do(t, "SADD", ns+":timestamps:"+item, "delayed:1795769182")
	srv.Do(t, "ZADD", ns+":delayed_queue_schedule", ts, ts)

	// Delay in another namespace writes identical keys and bytes.
	ns2 := ns + "-go"
	q2 := queue.New(srv.Pool(t), ns2)
	if err := q2.Delay(context.Background(), time.Unix(ts-1, 1), "mail", []byte(`{"class":"SendMail","args":[42,"x"]}`), queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := strs(t, srv.Do(t, "LRANGE", queue.DelayedKey(ns2, ts), 0, -1)); len(got) != 1 || got[0] != item {
		t.Fatalf("delayed list = %q, want [%s]", got, item)
	}
	if got := strs(t, srv.Do(t, "SMEMBERS", queue.TimestampsKey(ns2, item))); len(got) != 1 || got[0] != "delayed:1795769182" {
		t.Fatalf("timestamps set = %q", got)
	}
	if got := strs(t, srv.Do(t, "ZRANGE", queue.DelayedScheduleKey(ns2), 0, -1, "WITHSCORES")); fmt.Sprint(got) != "[1795769182 1795769182]" {
		t.Fatalf("schedule = %q", got)
	}
	if got, want := queue.DelayedKey(ns, ts), ns+":delayed:1795769182"; got != want {
		t.Fatalf("DelayedKey = %q, want %q", got, want)
	}

	s := delayed.New(queue.New(srv.Pool(t), ns), hclog.NewNullLogger())
	n, err := s.MoveDue(context.Background(), time.Unix(ts, 0))
	if err != nil || n != 1 {
		t.Fatalf("MoveDue = %d, %v; want 1", n, err)
	}
	if got := strs(t, srv.Do(t, "LRANGE", queue.QueueKey(ns, "mail"), 0, -1)); len(got) != 1 || got[0] != `{"class":"SendMail","args":[42,"x"]}` {
		t.Fatalf("queue = %q", got)
	}
	if got := strs(t, srv.Do(t, "SMEMBERS", queue.QueuesKey(ns))); fmt.Sprint(got) != "[mail]" {
		t.Fatalf("queues = %q", got)
	}
	for _, k := range []string{ns + ":delayed:1795769182", ns + ":timestamps:" + item, ns + ":delayed_queue_schedule"} {
		if exists(t, srv, k) {
			t.Errorf("%s still exists", k)
		}
	}
}

func TestScheduler_DelayMoveDue(t *testing.T) {
	srv := redistest.Start(t)
	ns := redistest.Namespace(t)
	qc := queue.New(srv.Pool(t), ns)
	s := delayed.New(qc, hclog.NewNullLogger())
	ctx := context.Background()
	now := time.Unix(1800000000, 0)
	id := queue.NewID()
	payload, _ := queue.Encode("Resize", []byte(`[{"w":1e700},[]]`), id)
	if err := qc.Delay(ctx, now.Add(-time.Second), "images", payload, queue.EnqueueOptions{Track: true, ID: id}); err != nil {
		t.Fatal(err)
	}
	later, _ := queue.Encode("Later", []byte(`[]`), "")
	if err := qc.Delay(ctx, now.Add(time.Hour), "images", later, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if !exists(t, srv, ns+":job:"+id+":status") {
		t.Fatal("no status for tracked delayed job")
	}
	list, err := qc.ListDelayed(ctx, 0)
	if err != nil || len(list) != 2 || list[0].Class != "Resize" || list[0].ID != id || list[1].Class != "Later" || list[1].Queue != "images" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if l, _ := qc.ListDelayed(ctx, 1); len(l) != 1 {
		t.Fatalf("List(1) gave %d", len(l))
	}

	n, err := s.MoveDue(ctx, now)
	if err != nil || n != 1 {
		t.Fatalf("MoveDue = %d, %v; want 1", n, err)
	}
	got := strs(t, srv.Do(t, "LRANGE", queue.QueueKey(ns, "images"), 0, -1))
	if len(got) != 1 || got[0] != string(payload) {
		t.Fatalf("queue = %q, want [%s]", got, payload)
	}
	// Not yet due: stays, with all its keys.
	ts := now.Add(time.Hour).Unix()
	item, _ := queue.DelayedItem("images", later)
	if !exists(t, srv, queue.DelayedKey(ns, ts)) || !exists(t, srv, queue.TimestampsKey(ns, string(item))) {
		t.Fatal("not-yet-due job's keys are gone")
	}
	if n, _ := s.MoveDue(ctx, now.Add(time.Hour-time.Second)); n != 0 {
		t.Fatalf("moved %d not-yet-due jobs", n)
	}
	// Cleanup: once moved, nothing of the delayed layout is left.
	if n, err := s.MoveDue(ctx, now.Add(time.Hour)); n != 1 || err != nil {
		t.Fatalf("MoveDue = %d, %v", n, err)
	}
	keys := strs(t, srv.Do(t, "KEYS", ns+":delayed*"))
	keys = append(keys, strs(t, srv.Do(t, "KEYS", ns+":timestamps:*"))...)
	if len(keys) != 0 {
		t.Fatalf("left behind: %q", keys)
	}
}

func TestScheduler_NoQueueLeftInPlace(t *testing.T) {
	srv := redistest.Start(t)
	ns := redistest.Namespace(t)
	srv.Do(t, "RPUSH", ns+":delayed:100", `{"class":"X","args":[]}`, `{"class":"Y","args":[],"queue":"q"}`)
	srv.Do(t, "ZADD", ns+":delayed_queue_schedule", 100, 100)
	s := delayed.New(queue.New(srv.Pool(t), ns), hclog.NewNullLogger())
	n, err := s.MoveDue(context.Background(), time.Unix(200, 0))
	if err != nil || n != 1 {
		t.Fatalf("MoveDue = %d, %v", n, err)
	}
	if got := strs(t, srv.Do(t, "LRANGE", ns+":delayed:100", 0, -1)); len(got) != 1 {
		t.Fatalf("delayed list = %q", got)
	}
}

// TestScheduler_ExactlyOnce races three schedulers over 5,000 jobs.
func TestScheduler_ExactlyOnce(t *testing.T) {
	srv := redistest.Start(t)
	ns := redistest.Namespace(t)
	ctx := context.Background()
	const jobs = 5000
	base := time.Now().Add(-time.Hour)
	conn := srv.Pool(t).Get()
	defer conn.Close()
	for i := 0; i < jobs; i++ {
		p, _ := queue.Encode("Job", []byte(fmt.Sprintf("[%d]", i)), queue.NewID())
		item, err := queue.DelayedItem("q", p)
		if err != nil {
			t.Fatal(err)
		}
		ts := base.Add(time.Duration(i%50) * time.Second).Unix()
		_ = conn.Send("RPUSH", queue.DelayedKey(ns, ts), item)
		_ = conn.Send("SADD", queue.TimestampsKey(ns, string(item)), fmt.Sprintf("delayed:%d", ts))
		_ = conn.Send("ZADD", queue.DelayedScheduleKey(ns), ts, ts)
	}
	if _, err := conn.Do(""); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	counts := make([]int, 3)
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := delayed.New(queue.New(srv.Pool(t), ns), hclog.NewNullLogger())
			for {
				n, err := s.MoveDue(ctx, time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				counts[g] += n
				left, _ := redis.Int(srv.Do(t, "ZCARD", queue.DelayedScheduleKey(ns)), nil)
				if left == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := counts[0] + counts[1] + counts[2]; got != jobs {
		t.Errorf("schedulers report %d moves (%v), want %d", got, counts, jobs)
	}
	got := strs(t, srv.Do(t, "LRANGE", queue.QueueKey(ns, "q"), 0, -1))
	if len(got) != jobs {
		t.Fatalf("queue length %d, want %d", len(got), jobs)
	}
	ids := map[string]bool{}
	for _, p := range got {
		j, err := queue.Decode("q", []byte(p))
		if err != nil {
			t.Fatal(err)
		}
		if ids[j.ID] {
			t.Fatalf("job %s moved twice", j.ID)
		}
		ids[j.ID] = true
	}
	if keys := strs(t, srv.Do(t, "KEYS", ns+":timestamps:*")); len(keys) != 0 {
		t.Fatalf("%d timestamps sets left", len(keys))
	}
}

// TestScheduler_OtherWriters: items whose "queue" is last lose it byte for
// byte (as resqued writes every item); others are pushed unchanged.
func TestScheduler_OtherWriters(t *testing.T) {
	srv := redistest.Start(t)
	ns := redistest.Namespace(t)
	items := []string{
		`{"args":[1,{"queue":"x"}],"attempt":2,"class":"X","id":"a","queue":"q"}`,
		`{"args":[],"class":"Y","queue":"q","retry":{"attempts":3}}`,
		`{"class":"Z","args":[9007199254740993],"queue":"q"}`,
	}
	want := []string{
		`{"args":[1,{"queue":"x"}],"attempt":2,"class":"X","id":"a"}`,
		items[1],
		`{"class":"Z","args":[9007199254740993]}`,
	}
	for _, it := range items {
		srv.Do(t, "RPUSH", queue.DelayedKey(ns, 50), it)
		srv.Do(t, "SADD", queue.TimestampsKey(ns, it), "delayed:50")
	}
	srv.Do(t, "ZADD", queue.DelayedScheduleKey(ns), 50, 50)
	n, err := delayed.New(queue.New(srv.Pool(t), ns), hclog.NewNullLogger()).MoveDue(context.Background(), time.Unix(50, 0))
	if err != nil || n != 3 {
		t.Fatalf("MoveDue = %d, %v", n, err)
	}
	got := strs(t, srv.Do(t, "LRANGE", queue.QueueKey(ns, "q"), 0, -1))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("queue =\n%q\nwant\n%q", got, want)
	}
	if keys := strs(t, srv.Do(t, "KEYS", ns+":*")); fmt.Sprint(keys) != fmt.Sprint([]string{queue.QueueKey(ns, "q"), queue.QueuesKey(ns)}) && fmt.Sprint(keys) != fmt.Sprint([]string{queue.QueuesKey(ns), queue.QueueKey(ns, "q")}) {
		t.Fatalf("keys left: %q", keys)
	}
}
