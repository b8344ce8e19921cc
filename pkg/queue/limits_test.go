package queue_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
)

// push appends raw payloads to queue q.
func push(t *testing.T, c *queue.Client, q string, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if err := c.Enqueue(context.Background(), q, []byte(p), queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// reserveUntil reserves from queues until a job is taken or the deadline
// passes (a limit's slot frees, a rate window moves on).
func reserveUntil(t *testing.T, f *queue.Fetcher, queues []string, opt queue.ReserveOptions, within time.Duration) *queue.Reserved {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := f.Reserve(context.Background(), queues, opt)
		if err == nil {
			if err := r.Decode(); err != nil {
				t.Fatal(err)
			}
			return r
		}
		if !errors.Is(err, queue.ErrNoJob) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no job taken within %v", within)
		}
		_ = f.Wait(context.Background(), queues, 50*time.Millisecond)
	}
}

func mustReserve(t *testing.T, f *queue.Fetcher, queues []string, opt queue.ReserveOptions) *queue.Reserved {
	t.Helper()
	r, err := f.Reserve(context.Background(), queues, opt)
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	if err := r.Decode(); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParseArgPath(t *testing.T) {
	for _, s := range []string{"args[0]", "args[2].customer_id", "args[0].a.b-c"} {
		p, err := queue.ParseArgPath(s)
		if err != nil || p.String() != s {
			t.Errorf("ParseArgPath(%q) = %v, %v", s, p, err)
		}
	}
	for _, s := range []string{"", "args", "args[x]", "args[-1]", "args[0]customer", "args[0].", "args[0].a..b", "args[0].a b", "payload.x"} {
		if _, err := queue.ParseArgPath(s); err == nil {
			t.Errorf("ParseArgPath(%q) succeeded", s)
		}
	}
}

// A class at its concurrency limit does not block the jobs behind it on
// the same queue: the reserve passes over its jobs (leaving them in
// place, in order), takes the next allowed one, and takes the held-back
// job once a slot frees.
func TestFetcher_ConcurrencyLimit(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	lim := queue.NewLimits(map[string]queue.ClassLimit{"Slow": {Concurrency: 1}, "Free": {}})
	if got := lim.Classes(); len(got) != 1 || got[0] != "Slow" {
		t.Fatalf("limited classes = %v, want [Slow]", got)
	}
	opt := queue.ReserveOptions{Limits: lim}
	push(t, c, "high", `{"class":"Slow","args":[1]}`, `{"class":"Slow","args":[2]}`, `{"class":"Fast","args":[3]}`)
	push(t, c, "low", `{"class":"Fast","args":[4]}`)
	queues := []string{"high", "low"}
	f1, f2 := leasedFetcher(t, c, "h:1:q"), leasedFetcher(t, c, "h:2:q")

	r1 := mustReserve(t, f1, queues, opt)
	if string(r1.Payload) != `{"class":"Slow","args":[1]}` || len(r1.Slots) == 0 {
		t.Fatalf("first reserve = %s slot %+v, want Slow [1] with a slot", r1.Payload, r1.Slots)
	}
	if n, _ := redis.Int(srv.Do(t, "ZCARD", queue.ConcurrencyKey(ns, "Slow")), nil); n != 1 {
		t.Errorf("slots held = %d, want 1", n)
	}
	// Slow is full: the second worker takes Fast [3] from high, before
	// anything in low (priority holds among the jobs allowed).
	r2 := mustReserve(t, f2, queues, opt)
	if string(r2.Payload) != `{"class":"Fast","args":[3]}` || len(r2.Slots) != 0 {
		t.Fatalf("second reserve = %s, want Fast [3] without a slot", r2.Payload)
	}
	if got, _ := redis.Strings(srv.Do(t, "LRANGE", queue.QueueKey(ns, "high"), 0, -1), nil); len(got) != 1 || got[0] != `{"class":"Slow","args":[2]}` {
		t.Errorf("high = %q, want the held-back Slow [2] alone", got)
	}
	if _, err := c.FinishJob(ctx, r2, queue.Outcome{}); err != nil {
		t.Fatal(err)
	}
	r2 = mustReserve(t, f2, queues, opt)
	if string(r2.Payload) != `{"class":"Fast","args":[4]}` {
		t.Fatalf("third reserve = %s, want Fast [4] from low", r2.Payload)
	}
	if _, err := c.FinishJob(ctx, r2, queue.Outcome{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f2.Reserve(ctx, queues, opt); !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("reserve with only a full class queued = %v, want ErrNoJob", err)
	}
	// The first job ends and frees its slot: Slow [2] runs.
	if _, err := c.FinishJob(ctx, r1, queue.Outcome{}); err != nil {
		t.Fatal(err)
	}
	if err := c.ReleaseSlots(ctx, nil, r1.Slots); err != nil {
		t.Fatal(err)
	}
	if err := c.ReleaseSlots(ctx, nil, r1.Slots); err != nil {
		t.Fatalf("release twice: %v", err)
	}
	r2 = reserveUntil(t, f2, queues, opt, 5*time.Second)
	if string(r2.Payload) != `{"class":"Slow","args":[2]}` || len(r2.Slots) == 0 {
		t.Fatalf("after the slot freed: %s, want Slow [2]", r2.Payload)
	}
	use, err := c.LimitsInUse(ctx, lim, queues)
	if err != nil || len(use) != 1 || use[0].Limit != "Slow" || use[0].InUse != 1 || use[0].Concurrency != 1 {
		t.Errorf("LimitsInUse = %+v, %v", use, err)
	}
}

// The outcome step frees the worker's own slot before it takes the next
// job of the same limit: a worker draining a limited class alone does
// not wait for itself.
func TestFetcher_FinishAndReserveFreesOwnSlot(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	opt := queue.ReserveOptions{Limits: queue.NewLimits(map[string]queue.ClassLimit{"Slow": {Concurrency: 1}})}
	push(t, c, "q", `{"class":"Slow","args":[1]}`, `{"class":"Slow","args":[2]}`)
	f := leasedFetcher(t, c, "h:1:q")
	r := mustReserve(t, f, []string{"q"}, opt)
	ok, next, err := f.FinishAndReserve(ctx, r, queue.Outcome{}, []string{"q"}, opt)
	if !ok || err != nil || next == nil || len(next.Slots) == 0 {
		t.Fatalf("FinishAndReserve = %v %+v %v", ok, next, err)
	}
	if got, _ := redis.Strings(srv.Do(t, "ZRANGE", queue.ConcurrencyKey(ns, "Slow"), 0, -1), nil); len(got) != 1 || got[0] != next.Slots[0].Member {
		t.Errorf("slots = %q, want only the next job's %q", got, next.Slots[0].Member)
	}
}

// A slot whose holder stops renewing it (killed with -9) lapses after
// the lease TTL, and the held-back job runs.
func TestFetcher_SlotLapsesWithLease(t *testing.T) {
	ctx := context.Background()
	_, c, _ := newClient(t)
	opt := queue.ReserveOptions{Limits: queue.NewLimits(map[string]queue.ClassLimit{"Slow": {Concurrency: 1}})}
	push(t, c, "q", `{"class":"Slow","args":[1]}`, `{"class":"Slow","args":[2]}`)
	dead := c.NewLease("h:1:q", "", 300*time.Millisecond)
	if _, err := dead.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	fd := dead.Fetcher()
	defer fd.Close()
	mustReserve(t, fd, []string{"q"}, opt) // and never heard of again
	f := leasedFetcher(t, c, "h:2:q")
	if _, err := f.Reserve(ctx, []string{"q"}, opt); !errors.Is(err, queue.ErrNoJob) {
		t.Fatalf("reserve while the slot is held = %v, want ErrNoJob", err)
	}
	start := time.Now()
	r := reserveUntil(t, f, []string{"q"}, opt, 5*time.Second)
	if string(r.Payload) != `{"class":"Slow","args":[2]}` {
		t.Fatalf("took %s", r.Payload)
	}
	t.Logf("slot free %v after the holder stopped (lease TTL 300ms)", time.Since(start))
}

// A lease renewal extends the slot of the job running: a long job keeps
// its slot past the TTL.
func TestLease_RenewKeepsSlot(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	opt := queue.ReserveOptions{Limits: queue.NewLimits(map[string]queue.ClassLimit{"Slow": {Concurrency: 1}})}
	push(t, c, "q", `{"class":"Slow","args":[1]}`)
	l := c.NewLease("h:1:q", "", 10*time.Second)
	if _, err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	f := l.Fetcher()
	defer f.Close()
	r := mustReserve(t, f, []string{"q"}, opt)
	key := queue.ConcurrencyKey(ns, "Slow")
	before, _ := redis.Int64(srv.Do(t, "ZSCORE", key, r.Slots[0].Member), nil)
	l.TTL = time.Minute
	if err := l.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := redis.Int64(srv.Do(t, "ZSCORE", key, r.Slots[0].Member), nil)
	if after-before < 40_000 {
		t.Errorf("slot lapses at %d after renewal, was %d: want ~50 s later", after, before)
	}
	// Freed, a renewal does not bring it back.
	if err := c.ReleaseSlots(ctx, l, r.Slots); err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := redis.Int(srv.Do(t, "ZCARD", key), nil); n != 0 {
		t.Errorf("slots after release and renewal = %d, want 0", n)
	}
}

// With a key path the limit is one per value: two customers run side by
// side, a second job of the first waits. A job whose args lack the key
// runs without the limit. Numbers name the limit as Lua prints them, and
// Limits.Names agrees.
func TestFetcher_ConcurrencyKey(t *testing.T) {
	srv, c, ns := newClient(t)
	path, err := queue.ParseArgPath("args[0].customer")
	if err != nil {
		t.Fatal(err)
	}
	lim := queue.NewLimits(map[string]queue.ClassLimit{"Report": {Concurrency: 1, ConcurrencyKey: path}})
	opt := queue.ReserveOptions{Limits: lim}
	push(t, c, "q", `{"class":"Report","args":[{"customer":42}]}`, `{"class":"Report","args":[{"customer":42}]}`,
		`{"class":"Report","args":[{"customer":"b"}]}`, `{"class":"Report","args":[{"other":1}]}`, `{"class":"Report","args":[{"customer":1.5}]}`)
	var got []string
	for i := 0; i < 4; i++ {
		f := leasedFetcher(t, c, fmt.Sprintf("h:%d:q", i))
		r := mustReserve(t, f, []string{"q"}, opt)
		slot := ""
		if len(r.Slots) > 0 {
			slot = r.Slots[0].Limit
			if conc, _, _ := lim.Names(r.Class, r.Args); conc != slot {
				t.Errorf("Names = %q, the script named it %q", conc, slot)
			}
		} else if _, _, missing := lim.Names(r.Class, r.Args); missing == nil {
			t.Errorf("%s: no slot, and Names finds the key", r.Payload)
		}
		got = append(got, slot)
	}
	want := []string{"Report:42", "Report:b", "", "Report:1.5"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("slots taken = %q, want %q", got, want)
	}
	if n, _ := redis.Int(srv.Do(t, "LLEN", queue.QueueKey(ns, "q")), nil); n != 1 {
		t.Errorf("queue holds %d, want the second job of customer 42", n)
	}
}

// A rate limit lets Rate starts through per period, then holds the
// class's jobs back until the window moves on.
func TestFetcher_RateLimit(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	opt := queue.ReserveOptions{Limits: queue.NewLimits(map[string]queue.ClassLimit{"Mail": {Rate: 2, Per: time.Second}})}
	push(t, c, "q", `{"class":"Mail","args":[1]}`, `{"class":"Mail","args":[2]}`, `{"class":"Mail","args":[3]}`, `{"class":"Other","args":[4]}`)
	f := leasedFetcher(t, c, "h:1:q")
	start := time.Now()
	for i := 1; i <= 2; i++ {
		r := mustReserve(t, f, []string{"q"}, opt)
		if _, err := c.FinishJob(ctx, r, queue.Outcome{}); err != nil {
			t.Fatal(err)
		}
	}
	r := mustReserve(t, f, []string{"q"}, opt)
	if r.Class != "Other" {
		t.Fatalf("third reserve took %s, want Other (Mail is at its rate)", r.Payload)
	}
	if _, err := c.FinishJob(ctx, r, queue.Outcome{}); err != nil {
		t.Fatal(err)
	}
	r = reserveUntil(t, f, []string{"q"}, opt, 5*time.Second)
	if string(r.Payload) != `{"class":"Mail","args":[3]}` {
		t.Fatalf("took %s", r.Payload)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("third Mail started %v after the first, within the 1s window", el)
	}
	if n, _ := redis.Int(srv.Do(t, "GET", queue.RateLimitedKey(ns, "Mail")), nil); n < 1 {
		t.Errorf("rate-limited count = %d, want at least 1", n)
	}
}

// A payload's own "concurrency" limits its job, with no limit
// configured for the class (and replaces a configured one); classes
// named with "::" keep their limit.
func TestFetcher_PayloadConcurrency(t *testing.T) {
	srv, c, ns := newClient(t)
	push(t, c, "q", `{"class":"Mailers::Welcome","args":[1],"concurrency":1}`, `{"class":"Mailers::Welcome","args":[2],"concurrency":1}`,
		`{"class":"Other","args":[3]}`, `{"class":"Report","args":[4],"concurrency":2}`, `{"class":"Report","args":[5],"concurrency":2}`)
	configured := queue.ReserveOptions{Limits: queue.NewLimits(map[string]queue.ClassLimit{"Report": {Concurrency: 1}})}
	for i, tc := range []struct {
		opt  queue.ReserveOptions
		want string
		slot string
	}{
		{queue.ReserveOptions{}, `{"class":"Mailers::Welcome","args":[1],"concurrency":1}`, "Mailers::Welcome"},
		{queue.ReserveOptions{}, `{"class":"Other","args":[3]}`, ""},
		{configured, `{"class":"Report","args":[4],"concurrency":2}`, "Report"},
		{configured, `{"class":"Report","args":[5],"concurrency":2}`, "Report"},
	} {
		f := leasedFetcher(t, c, fmt.Sprintf("h:%d:q", i))
		r := mustReserve(t, f, []string{"q"}, tc.opt)
		slot := ""
		if len(r.Slots) > 0 {
			slot = r.Slots[0].Limit
		}
		if string(r.Payload) != tc.want || slot != tc.slot {
			t.Errorf("reserve %d = %s (slot %q), want %s (slot %q)", i, r.Payload, slot, tc.want, tc.slot)
		}
	}
	if got, _ := redis.Strings(srv.Do(t, "LRANGE", queue.QueueKey(ns, "q"), 0, -1), nil); len(got) != 1 || got[0] != `{"class":"Mailers::Welcome","args":[2],"concurrency":1}` {
		t.Errorf("queue = %q, want the second Mailers::Welcome alone", got)
	}
}

// Limits.Names: the class alone, class:value with a key path, nothing
// (missing) when the path reaches no usable value.
func TestLimits_Names(t *testing.T) {
	path, _ := queue.ParseArgPath("args[0].c")
	lim := queue.NewLimits(map[string]queue.ClassLimit{"R": {Concurrency: 1, ConcurrencyKey: path, Rate: 1, Per: time.Second}})
	for args, want := range map[string]string{
		`[{"c":"x"}]`: "R:x", `[{"c":42}]`: "R:42", `[{"c":true}]`: "R:true", `[{"c":2.5}]`: "R:2.5",
		`[{"c":"a\tb"}]`: "", `[{"c":{}}]`: "", `[{}]`: "", `[]`: "", `{"c":1}`: "",
	} {
		conc, rate, missing := lim.Names("R", []byte(args))
		if conc != want || rate != "R" || (want == "") != (missing != nil) {
			t.Errorf("Names(%s) = %q, %q, %v; want %q", args, conc, rate, missing, want)
		}
	}
	if conc, rate, _ := lim.Names("Other", []byte(`[]`)); conc != "" || rate != "" {
		t.Errorf("an unlimited class has limits %q, %q", conc, rate)
	}
}
