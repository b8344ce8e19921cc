package status_test

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
	"github.com/resqued/resqued/pkg/status"
)

// redisAddr is the package's redis-server, for the examples.
var redisAddr string

func TestMain(m *testing.M) {
	os.Exit(redistest.RunWithServer(m, &redisAddr))
}

func examplePool() *redis.Pool {
	return &redis.Pool{Dial: func() (redis.Conn, error) { return redis.Dial("tcp", redisAddr) }}
}

// A tracked job's status follows it from enqueue to its end, as
// php-resque's Resque_Job_Status does: waiting, running, complete.
func ExampleTracker_Get() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	const ns = "example-get"
	q, st := queue.New(pool, ns), status.New(pool, ns)

	token := "0f3c2a"
	payload, _ := queue.Encode("Export", []byte(`["q3"]`), token)
	if err := q.Enqueue(ctx, "exports", payload, queue.EnqueueOptions{Track: true, ID: token}); err != nil {
		fmt.Println(err)
		return
	}
	s, _ := st.Get(ctx, token)
	fmt.Println(s.Code, s.Code.Final())

	// A worker moves it along.
	now := time.Now()
	_, _ = st.Update(ctx, token, status.Running, now)
	s, _ = st.Get(ctx, token)
	fmt.Println(s.Code, s.Code.Final())
	_, _ = st.Update(ctx, token, status.Complete, now)
	s, _ = st.Get(ctx, token)
	fmt.Println(s.Code, s.Code.Final(), s.Updated == now.Unix())

	_, err := st.Get(ctx, "never-enqueued")
	fmt.Println(errors.Is(err, status.ErrNotTracked))
	// Output:
	// waiting false
	// running false
	// complete true true
	// true
}

// A handler's progress and result are merged into the status value next
// to php-resque's fields, which keep their meaning; GetFull reads both.
func ExampleTracker_Annotate() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	const ns = "example-annotate"
	q, st := queue.New(pool, ns), status.New(pool, ns)
	token := "7d41be"
	payload, _ := queue.Encode("Resize", []byte(`["cat.png"]`), token)
	_ = q.Enqueue(ctx, "images", payload, queue.EnqueueOptions{Track: true, ID: token})

	half := 0.5
	tracked, err := st.Annotate(ctx, token, status.Detail{Progress: &half, Message: "resizing"})
	fmt.Println(tracked, err)
	f, _ := st.GetFull(ctx, token)
	fmt.Println(f.Code, *f.Progress, f.Message)

	// Only tracked jobs are annotated.
	tracked, err = st.Annotate(ctx, "untracked", status.Detail{Message: "lost"})
	fmt.Println(tracked, err)
	// Output:
	// true <nil>
	// waiting 0.5 resizing
	// false <nil>
}

// Stop forgets a status at once, as php-resque's stop() does.
func ExampleTracker_Stop() {
	ctx := context.Background()
	pool := examplePool()
	defer pool.Close()
	const ns = "example-stop"
	q, st := queue.New(pool, ns), status.New(pool, ns)
	token := "c0ffee"
	payload, _ := queue.Encode("Noop", nil, token)
	_ = q.Enqueue(ctx, "default", payload, queue.EnqueueOptions{Track: true, ID: token})

	fmt.Println(st.Stop(ctx, token))
	_, err := st.Get(ctx, token)
	fmt.Println(err)
	// Output:
	// <nil>
	// get status c0ffee: job not tracked
}
