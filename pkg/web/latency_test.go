package web_test

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/resqued/resqued/pkg/queue"
)

// Both queue tables show each queue's latency: from enqueued_at, from
// php-resque's queue_time, from the first sight of a head without a time
// (the seeded queues), and "—" for an empty queue.
func TestQueueLatency(t *testing.T) {
	e := start(t, "")
	now := time.Now()
	e.srv.Do(t, "SADD", queue.QueuesKey(ns), "stamped", "php")
	e.srv.Do(t, "RPUSH", queue.QueueKey(ns, "stamped"), fmt.Sprintf(`{"class":"A","args":[],"enqueued_at":%d}`, now.Add(-90*time.Minute-10*time.Second).Unix()))
	e.srv.Do(t, "RPUSH", queue.QueueKey(ns, "php"), fmt.Sprintf(`{"class":"Echo","args":[{}],"id":"49cf","queue_time":%d.5}`, now.Add(-51*time.Hour-10*time.Minute).Unix()))
	for _, path := range []string{"/", "/queues", "/queues?fragment=1"} {
		body := mustGet(t, e, path, ">Latency<")
		for q, want := range map[string]string{"stamped": "1h 30m", "php": "2d 3h", "empty": "—", "low": `\d+s`} {
			re := regexp.MustCompile(`href="/queues/` + q + `">` + q + `</a></td><td class="num">\d+</td><td class="num">` + want + `</td>`)
			if !re.MatchString(body) {
				t.Errorf("GET %s: queue %s's latency is not %s:\n%s", path, q, want, body)
			}
		}
	}
}
