package queue_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
	"github.com/resqued/resqued/pkg/status"
)

// A Bulk batch lands in input order, every queue in the queues set, and
// with track every job has its waiting status.
func TestBulk_Enqueue(t *testing.T) {
	ctx := context.Background()
	srv, c, ns := newClient(t)
	b, err := c.Bulk(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var jobs []queue.BulkJob
	for i, q := range []string{"a", "a", "b", "a"} {
		id := fmt.Sprintf("id%d", i)
		jobs = append(jobs, queue.BulkJob{Queue: q, ID: id, Payload: []byte(fmt.Sprintf(`{"class":"C","args":[%d],"id":"%s"}`, i, id))})
	}
	if err := b.Enqueue(jobs, true); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{"a": "[0 1 3]", "b": "[2]"} {
		vs, _ := redis.Strings(srv.Do(t, "LRANGE", queue.QueueKey(ns, q), 0, -1), nil)
		var got []string
		for _, v := range vs {
			j, err := queue.Decode(q, []byte(v))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, strings.Trim(string(j.Args), "[]"))
		}
		if fmt.Sprint(got) != want {
			t.Errorf("queue %s = %v, want %s", q, got, want)
		}
	}
	if qs, _ := c.Queues(ctx); fmt.Sprint(qs) != "[a b]" {
		t.Errorf("queues = %v", qs)
	}
	for _, j := range jobs {
		s, err := status.New(srv.Pool(t), ns).Get(ctx, j.ID)
		if err != nil || s.Code != status.Waiting || s.Started == 0 {
			t.Errorf("status of %s = %+v, %v; want waiting", j.ID, s, err)
		}
	}

	// A queue key that is not a list fails its RPUSH as the transaction
	// runs; the error says the rest was applied.
	srv.Do(t, "SET", queue.QueueKey(ns, "str"), "x")
	err = b.Enqueue([]queue.BulkJob{{Queue: "str", ID: "s", Payload: []byte(`{"class":"C","args":[]}`)}}, false)
	if err == nil || !strings.Contains(err.Error(), "the batch's other commands were applied") {
		t.Fatalf("Enqueue onto a string key = %v", err)
	}
}
