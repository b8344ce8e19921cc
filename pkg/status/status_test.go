package status_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/status"
)

func TestTracker(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	tr := status.New(srv.Pool(t), "resque")
	t0 := time.Unix(1795772481, 0)
	key := status.Key("resque", "tok")
	if key != "resque:job:tok:status" {
		t.Fatalf("key = %s", key)
	}

	t.Run("Untracked", func(t *testing.T) {
		ok, err := tr.Update(ctx, "nope", status.Running, t0)
		if err != nil || ok {
			t.Fatalf("Update of untracked = %v, %v; want false, nil", ok, err)
		}
		if n, _ := redis.Int(srv.Do(t, "EXISTS", status.Key("resque", "nope")), nil); n != 0 {
			t.Fatal("update created a status for an untracked job")
		}
		if _, err := tr.Get(ctx, "nope"); !errors.Is(err, status.ErrNotTracked) {
			t.Fatalf("Get = %v", err)
		}
	})

	t.Run("Lifecycle", func(t *testing.T) {
		srv.Do(t, "SET", key, status.Initial(t0))
		if got, _ := redis.String(srv.Do(t, "GET", key), nil); got != `{"status":1,"updated":1795772481,"started":1795772481}` {
			t.Fatalf("initial = %s", got)
		}
		if ok, err := tr.Update(ctx, "tok", status.Running, t0.Add(time.Second)); !ok || err != nil {
			t.Fatalf("Update running = %v %v", ok, err)
		}
		if got, _ := redis.String(srv.Do(t, "GET", key), nil); got != `{"status":2,"updated":1795772482,"started":1795772481}` {
			t.Fatalf("running = %s", got)
		}
		if ttl, _ := redis.Int(srv.Do(t, "TTL", key), nil); ttl != -1 {
			t.Errorf("running ttl = %d, want none", ttl)
		}
		if _, err := tr.Update(ctx, "tok", status.Complete, t0.Add(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		s, err := tr.Get(ctx, "tok")
		if err != nil || s.Code != status.Complete || s.Updated != 1795772483 || s.Started != 1795772481 {
			t.Fatalf("Get = %+v, %v", s, err)
		}
		ttl, _ := redis.Int(srv.Do(t, "TTL", key), nil)
		if ttl < 86390 || ttl > 86400 {
			t.Errorf("complete ttl = %d, want 24h", ttl)
		}
	})

	t.Run("KeepsOtherFields", func(t *testing.T) {
		// php-resque (modern) adds "result"; an update must keep it.
		raw, err := os.ReadFile("../../testdata/compat/status/php-resque-modern-complete.json")
		if err != nil {
			t.Fatal(err)
		}
		srv.Do(t, "SET", status.Key("resque", "php"), raw)
		if _, err := tr.Update(ctx, "php", status.Failed, t0); err != nil {
			t.Fatal(err)
		}
		got, _ := redis.String(srv.Do(t, "GET", status.Key("resque", "php")), nil)
		if want := `{"status":3,"updated":1795772481,"started":1795772483,"result":{"n":1,"s":"one"}}`; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})

	t.Run("Stop", func(t *testing.T) {
		srv.Do(t, "SET", status.Key("resque", "s"), status.Initial(t0))
		if err := tr.Stop(ctx, "s"); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Get(ctx, "s"); !errors.Is(err, status.ErrNotTracked) {
			t.Fatalf("after stop: %v", err)
		}
		if err := tr.Stop(ctx, "s"); !errors.Is(err, status.ErrNotTracked) {
			t.Fatalf("second stop: %v", err)
		}
	})
}

func TestCode_String(t *testing.T) {
	for c, want := range map[status.Code]string{1: "waiting", 2: "running", 3: "failed", 4: "complete"} {
		if got := c.String(); got != want {
			t.Errorf("%d = %s, want %s", c, got, want)
		}
	}
}

func TestTracker_Annotate(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	tr := status.New(srv.Pool(t), "resque")
	key := status.Key("resque", "tok")
	srv.Do(t, "SET", key, `{"status":2,"updated":1795772481,"started":1795772480,"php":"kept"}`, "EX", 500)
	p := 0.5
	if ok, err := tr.Annotate(ctx, "tok", status.Detail{Progress: &p, Message: "half"}); !ok || err != nil {
		t.Fatalf("Annotate = %v %v", ok, err)
	}
	if ok, err := tr.Annotate(ctx, "tok", status.Detail{Result: []byte(`{"n":[1,2]}`)}); !ok || err != nil {
		t.Fatalf("Annotate = %v %v", ok, err)
	}
	got, _ := redis.String(srv.Do(t, "GET", key), nil)
	if want := `{"status":2,"updated":1795772481,"started":1795772480,"message":"half","php":"kept","progress":0.5,"result":{"n":[1,2]}}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if ttl, _ := redis.Int(srv.Do(t, "TTL", key), nil); ttl < 490 {
		t.Errorf("ttl = %d: Annotate must keep the expiry", ttl)
	}
	f, err := tr.GetFull(ctx, "tok")
	if err != nil || f.Code != status.Running || *f.Progress != 0.5 || f.Message != "half" || string(f.Result) != `{"n":[1,2]}` {
		t.Errorf("GetFull = %+v %v", f, err)
	}
	if ok, _ := tr.Annotate(ctx, "untracked", status.Detail{Message: "x"}); ok {
		t.Error("annotated an untracked job")
	}
}

// The detail the outcome script merges into a status (resqued_status with
// a detail) must come out byte for byte as Annotate followed by Update
// left it, when both were separate steps.
func TestUpdateLua_DetailAsAnnotate(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	tr := status.New(srv.Pool(t), "resque")
	script := redis.NewScript(1, status.UpdateLua+`return resqued_status(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])`)
	conn := srv.Pool(t).Get()
	defer conn.Close()
	now := time.Unix(1795772490, 0)
	php, err := os.ReadFile("../../testdata/compat/status/php-resque-modern-complete.json")
	if err != nil {
		t.Fatal(err)
	}
	curs := []string{
		`{"status":2,"updated":1795772481,"started":1795772480}`,
		`{"status":2,"updated":1795772481,"started":1795772480,"message":"half","progress":0.5}`,
		`{ "started" : 1795772480 , "zz": [1, {"a": "}]\"x"}], "status": 2, "error": "old", "updated": 1.7e9, "a_b": null, "ab": true }`,
		`{"status":2,"updated":1795772481,"error":"first","error":"second"}`,
		`{"updated":1795772481,"status":2}`,
		`{"status":2}`,
		`{"php":"no status field"}`,
		`{}`,
		`[1,2]`,
		`not json`,
		string(php),
	}
	details := []status.Detail{
		{Error: `Resqued::HandlerFailed: exit status 1 "quoted" <b> & ünï`},
		{Result: json.RawMessage(`{"n": [1, 2], "s":"x"}`)},
	}
	for _, d := range details {
		add, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		for i, cur := range curs {
			key := status.Key("resque", "tok")
			srv.Do(t, "SET", key, cur)
			_, _ = tr.Annotate(ctx, "tok", d) // fails, as it should, on a value that is not an object
			if _, err := tr.Update(ctx, "tok", status.Failed, now); err != nil {
				t.Fatal(err)
			}
			want, _ := redis.String(srv.Do(t, "GET", key), nil)
			srv.Do(t, "SET", key, cur)
			if n, err := redis.Int(script.Do(conn, key, int(status.Failed), now.Unix(), status.TTLFor(status.Failed), add)); n != 1 || err != nil {
				t.Fatalf("case %d: script = %d %v", i, n, err)
			}
			got, _ := redis.String(srv.Do(t, "GET", key), nil)
			if got != want {
				t.Errorf("case %d, detail %s:\n got  %s\n want %s", i, add, got, want)
			}
			if ttl, _ := redis.Int(srv.Do(t, "TTL", key), nil); ttl <= 0 {
				t.Errorf("case %d: ttl %d, want the final expiry", i, ttl)
			}
		}
	}
	// Untracked: nothing is created.
	if n, _ := redis.Int(script.Do(conn, status.Key("resque", "none"), 3, now.Unix(), 10, `{"error":"x"}`)); n != 0 {
		t.Errorf("script on an untracked job = %d, want 0", n)
	}
}
