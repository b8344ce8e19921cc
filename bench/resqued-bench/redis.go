package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/resqued/resqued/pkg/queue"
)

// redisServer is a private redis-server on a free loopback port (never
// 6379), with no persistence, stopped by stop.
type redisServer struct {
	addr   string
	cmd    *exec.Cmd
	exited chan error
	pool   *redis.Pool
}

func startRedis(bin, dir string) (*redisServer, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port == 6379 {
			continue
		}
		s, err := startRedisOn(bin, dir, port)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("start redis-server: %w", lastErr)
}

func startRedisOn(bin, dir string, port int) (*redisServer, error) {
	p := strconv.Itoa(port)
	cmd := exec.Command(bin, "--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--logfile", "", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	track(cmd)
	s := &redisServer{addr: "127.0.0.1:" + p, cmd: cmd, exited: make(chan error, 1)}
	go func() { s.exited <- cmd.Wait(); untrack(cmd) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := redis.Dial("tcp", s.addr)
		if err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil {
				break
			}
		}
		select {
		case werr := <-s.exited:
			return nil, fmt.Errorf("redis-server on port %d exited: %v", port, werr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("redis-server on port %d not ready after 20s", port)
		}
	}
	s.pool = &redis.Pool{
		MaxIdle: 8,
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", s.addr)
		},
	}
	return s, nil
}

func (s *redisServer) url() string { return "redis://" + s.addr + "/0" }

func (s *redisServer) stop() {
	if s.pool != nil {
		s.pool.Close()
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
	}
}

// do runs one command on a pooled connection.
func (s *redisServer) do(cmd string, args ...interface{}) (interface{}, error) {
	c := s.pool.Get()
	defer c.Close()
	return c.Do(cmd, args...)
}

func (s *redisServer) flush() error {
	_, err := s.do("FLUSHALL")
	return err
}

func (s *redisServer) getInt(key string) (int, error) {
	n, err := redis.Int(s.do("GET", key))
	if errors.Is(err, redis.ErrNil) {
		return 0, nil
	}
	return n, err
}

// info returns the fields of INFO section as a map.
func (s *redisServer) info(section string) (map[string]string, error) {
	txt, err := redis.String(s.do("INFO", section))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

// cpu is redis-server's user and system CPU so far.
func (s *redisServer) cpu() (time.Duration, error) {
	m, err := s.info("cpu")
	if err != nil {
		return 0, err
	}
	u, err1 := strconv.ParseFloat(m["used_cpu_user"], 64)
	sy, err2 := strconv.ParseFloat(m["used_cpu_sys"], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("INFO cpu: %w", err)
	}
	return time.Duration((u + sy) * float64(time.Second)), nil
}

// monitor counts, per command name, the commands clients send to the
// server (MONITOR, leaving out those run inside Lua scripts and INFO, the
// bench's own) until stop is called.
func (s *redisServer) monitor() (stop func() map[string]int64, err error) {
	c, err := redis.Dial("tcp", s.addr)
	if err != nil {
		return nil, err
	}
	if _, err := c.Do("MONITOR"); err != nil {
		c.Close()
		return nil, err
	}
	counts := map[string]int64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			v, err := redis.String(c.Receive())
			if err != nil {
				return
			}
			// 1795781337.642308 [0 127.0.0.1:54321] "GET" "key"
			_, rest, ok := strings.Cut(v, "[")
			if !ok {
				continue
			}
			client, rest, ok := strings.Cut(rest, "] ")
			if !ok || strings.HasSuffix(client, " lua") {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimPrefix(rest, `"`), `"`)
			name = strings.ToLower(name)
			if name != "info" {
				counts[name]++
			}
		}
	}()
	return func() map[string]int64 {
		c.Close()
		<-done
		return counts
	}, nil
}

// blockedClients is the number of clients blocked in a command (BLMOVE).
func (s *redisServer) blockedClients() (int, error) {
	m, err := s.info("clients")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(m["blocked_clients"])
}

// commandCalls returns calls per command from INFO commandstats.
func (s *redisServer) commandCalls() (map[string]int64, error) {
	m, err := s.info("commandstats")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for k, v := range m {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		for _, f := range strings.Split(v, ",") {
			if n, ok := strings.CutPrefix(f, "calls="); ok {
				out[name], _ = strconv.ParseInt(n, 10, 64)
			}
		}
	}
	return out, nil
}

// benchQueue is the queue every measurement uses.
const benchQueue = "bench"

// jobIDs gives every bench job an id, as resqued enqueue and php-resque
// do; Ruby Resque's payloads have none, which spares resqued the status
// update (one round trip) per job.
var jobIDs = true

// payloads returns n payloads of class as resqued enqueue writes them
// (with an id, unless jobIDs is off).
func payloads(class string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		id := ""
		if jobIDs {
			id = queue.NewID()
		}
		p, err := queue.Encode(class, benchArgs, id)
		if err != nil {
			panic(err)
		}
		out[i] = p
	}
	return out
}

// preEnqueue pushes n jobs of class onto the bench queue, pipelined.
func (s *redisServer) preEnqueue(class string, n int) error {
	c := s.pool.Get()
	defer c.Close()
	if _, err := c.Do("SADD", queue.QueuesKey("resque"), benchQueue); err != nil {
		return err
	}
	ps := payloads(class, n)
	for len(ps) > 0 {
		k := min(len(ps), 1000)
		args := make([]interface{}, 0, k+1)
		args = append(args, queue.QueueKey("resque", benchQueue))
		for _, p := range ps[:k] {
			args = append(args, p)
		}
		if _, err := c.Do("RPUSH", args...); err != nil {
			return err
		}
		ps = ps[k:]
	}
	got, err := redis.Int(c.Do("LLEN", queue.QueueKey("resque", benchQueue)))
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("pre-enqueue: queue holds %d jobs, want %d", got, n)
	}
	return nil
}

// checkDrained verifies that n jobs ran, none failed and none is left.
func (s *redisServer) checkDrained(n int) error {
	processed, err := s.getInt(queue.StatKey("resque", "processed"))
	if err != nil {
		return err
	}
	failed, err := s.getInt(queue.StatKey("resque", "failed"))
	if err != nil {
		return err
	}
	left, err := redis.Int(s.do("LLEN", queue.QueueKey("resque", benchQueue)))
	if err != nil {
		return err
	}
	if processed != n || failed != 0 || left != 0 {
		var why string
		if failed > 0 {
			if f, err := redis.String(s.do("LINDEX", queue.FailedKey("resque"), 0)); err == nil {
				why = ": first failure " + f
			}
		}
		return fmt.Errorf("after the run: processed %d, failed %d, left %d; want %d, 0, 0%s", processed, failed, left, n, why)
	}
	return nil
}

// waitFor polls cond every interval until it is true or within passes.
func waitFor(within, interval time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s", what, within)
		}
		time.Sleep(interval)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
