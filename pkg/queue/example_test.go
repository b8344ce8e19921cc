package queue_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/internal/redistest"
	"github.com/resqued/resqued/pkg/queue"
)

// redisAddr is the package's redis-server, for the examples.
var redisAddr string

func TestMain(m *testing.M) {
	os.Exit(redistest.RunWithServer(m, &redisAddr))
}

// examplePool connects to the package's redis-server.
func examplePool() *redis.Pool {
	return &redis.Pool{Dial: func() (redis.Conn, error) { return redis.Dial("tcp", redisAddr) }}
}

// Enqueue a job the way Ruby's Resque.enqueue does, then look at the
// queues as resque-web would.
func ExampleClient_Enqueue() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	q := queue.New(pool, "example-enqueue")

	payload, err := queue.Encode("Mailers::Welcome", []byte(`[42,"en"]`), "")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := q.Enqueue(ctx, "mail", payload, queue.EnqueueOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	queues, _ := q.Queues(ctx)
	n, _ := q.Size(ctx, "mail")
	fmt.Println(queues, n)
	fmt.Printf("%s\n", payload)
	// Output:
	// [mail] 1
	// {"class":"Mailers::Welcome","args":[42,"en"]}
}

// Queues lists every queue a job was ever pushed to, sorted, as Ruby's
// Resque.queues does.
func ExampleClient_Queues() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	q := queue.New(pool, "example-queues")
	for _, name := range []string{"low", "high", "default"} {
		p, _ := queue.Encode("Ping", nil, "")
		_ = q.Enqueue(ctx, name, p, queue.EnqueueOptions{})
	}
	queues, err := q.Queues(ctx)
	fmt.Println(queues, err)
	// Output: [default high low] <nil>
}

// Size counts a queue's jobs; a queue nobody pushed to has none.
func ExampleClient_Size() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	q := queue.New(pool, "example-size")
	for i := 0; i < 3; i++ {
		p, _ := queue.Encode("Report", []byte(fmt.Sprintf("[%d]", i)), "")
		_ = q.Enqueue(ctx, "reports", p, queue.EnqueueOptions{})
	}
	reports, _ := q.Size(ctx, "reports")
	none, _ := q.Size(ctx, "never-used")
	fmt.Println(reports, none)
	// Output: 3 0
}

// Workers lists the registered worker ids, host:pid:queues.
func ExampleClient_Workers() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	q := queue.New(pool, "example-workers")
	id := queue.WorkerID("web-3", 4242, []string{"high", "low"})
	if err := q.RegisterWorker(ctx, id, time.Now()); err != nil {
		fmt.Println(err)
		return
	}
	ids, _ := q.Workers(ctx)
	fmt.Println(ids)
	// Output: [web-3:4242:high,low]
}

// Failures reads the failed list, oldest first: records in Ruby Resque's
// format, whoever wrote them.
func ExampleClient_Failures() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	q := queue.New(pool, "example-failures")
	// A record as Ruby Resque (or a resqued worker) pushes it.
	record := `{"failed_at":"2026/01/02 03:04:05 UTC","payload":{"class":"Import","args":["data.csv"]},` +
		`"exception":"Resqued::HandlerFailed","error":"handler Import exited with status 1",` +
		`"backtrace":["no such file: data.csv"],"worker":"web-3:4242:imports","queue":"imports"}`
	conn := pool.Get()
	_, _ = conn.Do("RPUSH", queue.FailedKey("example-failures"), record)
	conn.Close()

	fs, err := q.Failures(ctx, 0, -1)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range fs {
		fmt.Println(f.FailedAt, f.Queue, f.Worker)
		fmt.Println(f.Exception+":", f.Error, f.Backtrace)
		fmt.Printf("%s\n", f.Payload)
	}
	// Output:
	// 2026/01/02 03:04:05 UTC imports web-3:4242:imports
	// Resqued::HandlerFailed: handler Import exited with status 1 [no such file: data.csv]
	// {"class":"Import","args":["data.csv"]}
}

// A worker's life with one job: take a lease on its id, reserve the next
// job into worker:<id> (atomically, so a crash leaves it there for
// pruning), decode it, and record its outcome. The failure record is the
// one Ruby Resque's tools read.
func ExampleFetcher_Reserve() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	q := queue.New(pool, "example-reserve")

	for _, args := range []string{`["ok"]`, `["boom"]`} {
		p, _ := queue.Encode("Resize", []byte(args), "")
		_ = q.Enqueue(ctx, "images", p, queue.EnqueueOptions{})
	}
	id := queue.WorkerID("example-host", 4242, []string{"images"})
	lease := q.NewLease(id, "", 6*time.Second)
	if _, err := lease.Acquire(ctx); err != nil {
		fmt.Println(err)
		return
	}
	_ = q.RegisterWorker(ctx, id, time.Now())
	fetch := lease.Fetcher()
	defer fetch.Close()

	for {
		r, err := fetch.Reserve(ctx, []string{"images"}, queue.ReserveOptions{})
		if errors.Is(err, queue.ErrNoJob) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := r.Decode(); err != nil {
			fmt.Println(err)
			return
		}
		// Run the job here; this one fails when its argument says so.
		var o queue.Outcome
		if string(r.Args) == `["boom"]` {
			o = queue.Outcome{Exception: "RuntimeError", Error: "boom", Backtrace: []string{"resize.sh:3"}}
		}
		recorded, err := q.FinishJob(ctx, r, o)
		fmt.Println(r.Class, string(r.Args), o, recorded, err)
	}
	fs, _ := q.Failures(ctx, 0, -1)
	fmt.Println(len(fs), fs[0].Exception, fs[0].Error, fs[0].Queue, fs[0].Worker)
	// Output:
	// Resize ["ok"] ok true <nil>
	// Resize ["boom"] RuntimeError: boom true <nil>
	// 1 RuntimeError boom images example-host:4242:images
}
