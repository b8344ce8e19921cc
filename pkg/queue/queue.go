package queue

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/status"
)

// ErrNoJob is returned by Reserve when no queue had a job in time.
var ErrNoJob = errors.New("no job")

// Client reads and writes one Resque namespace.
type Client struct {
	pool *redis.Pool
	ns   string

	// replicas.go: WithMinReplicas, WithReplicaReport.
	minReplicas    int
	replicaTimeout time.Duration
	replicaReport  func(error)
}

// New returns a Client for namespace ns ("resque" unless configured),
// with opts (WithMinReplicas, WithReplicaReport).
func New(pool *redis.Pool, ns string, opts ...Option) *Client {
	c := &Client{pool: pool, ns: ns}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Namespace returns the namespace, without its trailing colon.
func (c *Client) Namespace() string { return c.ns }

// Close closes the connection pool the Client was made with, and so
// every other user of that pool (a status.Tracker on it).
func (c *Client) Close() error { return c.pool.Close() }

func (c *Client) do(ctx context.Context, cmd string, args ...interface{}) (interface{}, error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.Do(cmd, args...)
}

// initialStatus is php-resque's waiting status of a job tracked from its
// enqueue at now (zero: time.Now()): the one value every enqueue and
// delay writes for it.
func initialStatus(now time.Time) []byte {
	if now.IsZero() {
		now = time.Now()
	}
	return status.Initial(now)
}

// queueNameForbidden are the characters a queue name may not hold. The
// move-due script gets them as a Lua pattern's character class, so they
// must stay free of Lua's magic characters (^%]-).
const queueNameForbidden = ",: \t\r\n"

// ValidateQueueName refuses names Resque's tools cannot show: empty ones,
// and ones with a comma (the worker id separator), colon or whitespace.
// It is the one queue-name rule: the move-due script applies the same
// queueNameForbidden to the queues delayed items name.
func ValidateQueueName(q string) error {
	if q == "" {
		return errors.New("queue name is empty")
	}
	if strings.ContainsAny(q, queueNameForbidden) {
		return fmt.Errorf("queue name %q: must not contain a comma, colon or whitespace", q)
	}
	return nil
}

// Queues returns every queue in the queues set, sorted.
func (c *Client) Queues(ctx context.Context) ([]string, error) {
	qs, err := redis.Strings(c.do(ctx, "SMEMBERS", QueuesKey(c.ns)))
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	sort.Strings(qs)
	return qs, nil
}

// Size returns the number of jobs waiting in queue q.
func (c *Client) Size(ctx context.Context, q string) (int, error) {
	n, err := redis.Int(c.do(ctx, "LLEN", QueueKey(c.ns, q)))
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", q, err)
	}
	return n, nil
}

// PushFront puts payload back at the head of queue q, where it came from.
func (c *Client) PushFront(ctx context.Context, q string, payload []byte) error {
	if _, err := c.do(ctx, "LPUSH", QueueKey(c.ns, q), payload); err != nil {
		return fmt.Errorf("requeue to %s: %w", q, err)
	}
	return nil
}

// PausedAll reports whether an operator paused every worker by setting
// pause-all-workers to "true", as Ruby Resque 2.x checks before reserving.
func (c *Client) PausedAll(ctx context.Context) (bool, error) {
	v, err := redis.String(c.do(ctx, "GET", PauseAllKey(c.ns)))
	if errors.Is(err, redis.ErrNil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read pause flag: %w", err)
	}
	return strings.TrimSpace(strings.ToLower(v)) == "true", nil
}

// IsPattern reports whether a queue specification needs the queues set to
// be resolved: "*", a glob such as "high*", or an exclusion "!low".
func IsPattern(spec string) bool {
	return strings.HasPrefix(spec, "!") || strings.ContainsAny(spec, "*?[")
}

// ExpandQueues resolves queue specifications, in priority order, against
// all (the sorted contents of the queues set). A plain name stands for
// itself; "*" and globs ("high*") stand for every matching queue in
// alphabetical order that is not already listed; "!pattern" drops matching
// queues from what globs add. Each queue appears once.
func ExpandQueues(specs, all []string) []string {
	var excl []string
	for _, s := range specs {
		if strings.HasPrefix(s, "!") {
			excl = append(excl, s[1:])
		}
	}
	excluded := func(q string) bool {
		for _, e := range excl {
			if ok, _ := path.Match(e, q); ok {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	var out []string
	add := func(q string) {
		if !seen[q] {
			seen[q] = true
			out = append(out, q)
		}
	}
	// A queue named explicitly takes the place where it is named, never
	// a place inside a glob: "high,*" checks high first, "*,low" last.
	for _, s := range specs {
		switch {
		case strings.HasPrefix(s, "!"):
		case IsPattern(s):
			for _, q := range all {
				if ok, _ := path.Match(s, q); ok && !excluded(q) && !isNamed(specs, q) {
					add(q)
				}
			}
		default:
			add(s)
		}
	}
	return out
}

func isNamed(specs []string, q string) bool {
	for _, s := range specs {
		if s == q {
			return true
		}
	}
	return false
}
