package redisurl

// Redis Cluster.
//
// A URL redis+cluster://[user:pass@]host1:7000,host2:7001/ (rediss+cluster://
// for TLS) names seed nodes of a Redis Cluster. resqued keeps every key of
// a namespace in one hash slot, so it needs no general cluster client: the
// namespace must carry a hash tag ("{resque}"), every key starts with it,
// and each pooled connection goes to the master that owns that one slot.
//
// A connection follows MOVED (the slot's master changed: a failover, or
// the slot was resharded) by learning the new master and, for a plain
// command, repeating it there; inside MULTI, a pipeline, WATCH or after
// CLIENT (state that lives on the old node) it returns the error instead
// and marks itself broken, so the pool drops it and the caller's retry
// dials the new master. It follows ASK (the slot is migrating) once, with
// ASKING, for a plain command. When the master it knows is unreachable it
// reads the slot map again from any other node it knows.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// ErrClusterNamespace is returned by NewPool for a cluster URL whose
// namespace has no hash tag.
var ErrClusterNamespace = errors.New("a Redis Cluster needs a hash-tagged namespace, such as --namespace '{resque}', so that every key lives in one slot")

// SlotCount is how many hash slots a Redis Cluster has.
const SlotCount = 16384

// HashSlot is the cluster hash slot of key, as CLUSTER KEYSLOT computes
// it: CRC16 (XMODEM) of the hash tag (what is between the first "{" and
// the first "}" after it, when not empty), or else of the whole key,
// modulo 16384.
func HashSlot(key string) int {
	if tag, ok := hashTag(key); ok {
		key = tag
	}
	return int(crc16(key) % SlotCount)
}

// NamespaceTag returns the hash tag of namespace ns when the tag lies
// wholly inside it, so that every key ns+":..." hashes on it alone.
func NamespaceTag(ns string) (string, bool) { return hashTag(ns) }

func hashTag(key string) (string, bool) {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return "", false
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return "", false
	}
	return key[i+1 : i+1+j], true
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), Redis Cluster's
// key hash.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// clusterDialer dials the master of one slot.
type clusterDialer struct {
	slot int
	opts []redis.DialOption

	mu     sync.Mutex
	seeds  []string // from the URL, always asked
	known  []string // every node of the last slot map
	master string   // the slot's master as last learnt, or ""
}

// newClusterDialer checks a cluster URL and the namespace.
func newClusterDialer(u *url.URL, raw string, opt Options, timeouts []redis.DialOption) (*clusterDialer, error) {
	tag, ok := NamespaceTag(opt.Namespace)
	if !ok {
		return nil, fmt.Errorf("namespace %q: %w", opt.Namespace, ErrClusterNamespace)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("parse redis url %s: no host", Redacted(raw))
	}
	if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
		return nil, fmt.Errorf("parse redis url %s: Redis Cluster has only database 0", Redacted(raw))
	}
	d := &clusterDialer{slot: HashSlot("{" + tag + "}")}
	if d.seeds = hostList(u.Host, "6379"); d.seeds == nil {
		return nil, fmt.Errorf("parse redis url %s: empty cluster host", Redacted(raw))
	}
	d.opts = append(d.opts, timeouts...)
	if u.Scheme == "rediss+cluster" {
		d.opts = append(d.opts, redis.DialUseTLS(true))
	}
	d.opts = append(d.opts, credentials(u)...)
	return d, nil
}

// Dial connects to the slot's master: the one last learnt, or, when
// there is none or it does not answer, the one the slot map of any
// known node names.
func (d *clusterDialer) Dial(ctx context.Context) (redis.Conn, error) {
	d.mu.Lock()
	addr := d.master
	d.mu.Unlock()
	if addr != "" {
		if c, err := redis.DialContext(ctx, "tcp", addr, d.opts...); err == nil {
			return &clusterConn{d: d, c: c, addr: addr}, nil
		}
	}
	addr, err := d.refresh(ctx)
	if err != nil {
		return nil, err
	}
	c, err := redis.DialContext(ctx, "tcp", addr, d.opts...)
	if err != nil {
		return nil, fmt.Errorf("dial cluster master %s of slot %d: %w", addr, d.slot, err)
	}
	return &clusterConn{d: d, c: c, addr: addr}, nil
}

// refresh reads the slot map from the first node that answers (the
// seeds, then every node of the last map) and returns the slot's master.
func (d *clusterDialer) refresh(ctx context.Context) (string, error) {
	d.mu.Lock()
	nodes := append(append([]string{}, d.seeds...), d.known...)
	d.mu.Unlock()
	var errs []error
	seen := map[string]bool{}
	for _, n := range nodes {
		if seen[n] {
			continue
		}
		seen[n] = true
		master, all, err := d.slots(ctx, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d.mu.Lock()
		d.master, d.known = master, all
		d.mu.Unlock()
		return master, nil
	}
	return "", fmt.Errorf("find the master of cluster slot %d: %w", d.slot, errors.Join(errs...))
}

// slots asks node for CLUSTER SLOTS and returns the master of d.slot
// and every node in the map.
func (d *clusterDialer) slots(ctx context.Context, node string) (master string, all []string, err error) {
	c, err := redis.DialContext(ctx, "tcp", node, d.opts...)
	if err != nil {
		return "", nil, err
	}
	defer c.Close()
	ranges, err := redis.Values(c.Do("CLUSTER", "SLOTS"))
	if err != nil {
		return "", nil, fmt.Errorf("cluster slots from %s: %w", node, err)
	}
	host, _, _ := net.SplitHostPort(node)
	for _, r := range ranges {
		v, err := redis.Values(r, nil)
		if err != nil || len(v) < 3 {
			continue
		}
		lo, _ := redis.Int(v[0], nil)
		hi, _ := redis.Int(v[1], nil)
		for i, n := range v[2:] {
			addr, ok := nodeAddr(n, host)
			if !ok {
				continue
			}
			all = append(all, addr)
			if i == 0 && lo <= d.slot && d.slot <= hi {
				master = addr
			}
		}
	}
	if master == "" {
		return "", nil, fmt.Errorf("cluster slots from %s: no master serves slot %d", node, d.slot)
	}
	return master, all, nil
}

// nodeAddr reads a node entry of CLUSTER SLOTS ([host, port, id, ...]);
// an empty host means the host of the node asked.
func nodeAddr(n interface{}, asked string) (string, bool) {
	v, err := redis.Values(n, nil)
	if err != nil || len(v) < 2 {
		return "", false
	}
	host, _ := redis.String(v[0], nil)
	port, err := redis.Int(v[1], nil)
	if err != nil || host == "?" {
		return "", false
	}
	if host == "" {
		host = asked
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), true
}

// learn records addr as the slot's master (a MOVED named it), or forgets
// the master (addr == "") so that the next dial reads the map again.
func (d *clusterDialer) learn(addr string) {
	d.mu.Lock()
	d.master = addr
	d.mu.Unlock()
}

// errMovedBroken is a clusterConn's Err once a redirect reached it where
// it could not follow: the pool then drops it.
var errMovedBroken = errors.New("cluster slot moved: connection dropped")

// maxRedirects bounds the MOVED a single command follows.
const maxRedirects = 5

// clusterConn is a connection to the slot's master that follows MOVED
// and ASK as the package comment says.
type clusterConn struct {
	d    *clusterDialer
	c    redis.Conn
	addr string

	pending int  // Sends not yet read
	pinned  bool // MULTI, WATCH or CLIENT state lives on this node
	broken  bool
}

// redirect reads a MOVED or ASK error: the kind and the target address.
func redirect(err error) (kind, addr string) {
	var re redis.Error
	if !errors.As(err, &re) {
		return "", ""
	}
	f := strings.Fields(string(re))
	if len(f) == 3 && (f[0] == "MOVED" || f[0] == "ASK") {
		return f[0], f[2]
	}
	return "", ""
}

// readOnly reports a write refused by a replica: this node was demoted.
func readOnly(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(string(re), "READONLY ")
}

// pins reports whether cmd leaves state on the node that a redirected
// repeat elsewhere would lose.
func pins(cmd string) bool {
	switch strings.ToUpper(cmd) {
	case "MULTI", "WATCH", "CLIENT", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "SELECT", "READONLY", "ASKING":
		return true
	}
	return false
}

// noteErr learns from an error seen where the command cannot be repeated:
// the connection is marked broken and the slot's new master noted.
func (c *clusterConn) noteErr(err error) {
	if kind, addr := redirect(err); kind != "" {
		c.broken = true
		if kind == "MOVED" {
			c.d.learn(addr)
		}
	} else if readOnly(err) {
		c.broken = true
		c.d.learn("")
	}
}

func (c *clusterConn) noteReplies(reply interface{}, err error) {
	if err != nil {
		c.noteErr(err)
	}
	if vs, ok := reply.([]interface{}); ok {
		for _, v := range vs {
			if e, ok := v.(redis.Error); ok {
				c.noteErr(e)
			}
		}
	}
}

// do runs cmd through run (a Do, DoWithTimeout or DoContext of the
// current node's connection) and follows redirects where it may.
func (c *clusterConn) do(ctx context.Context, run func(redis.Conn) (interface{}, error), cmd string) (interface{}, error) {
	if c.broken {
		return nil, errMovedBroken
	}
	plain := c.pending == 0 && !c.pinned && cmd != ""
	if pins(cmd) {
		c.pinned = true
	}
	// A pinned connection stays pinned after EXEC: simpler than
	// tracking when WATCH/MULTI/CLIENT state ends, and a pinned
	// connection that meets MOVED is only dropped, not wrong.
	reply, err := run(c.c)
	c.pending = 0 // Do reads every pending reply
	if !plain {
		c.noteReplies(reply, err)
		return reply, err
	}
	for i := 0; i < maxRedirects; i++ {
		kind, addr := redirect(err)
		if kind == "" {
			if readOnly(err) {
				c.broken = true
				c.d.learn("")
			}
			return reply, err
		}
		if kind == "ASK" {
			return c.ask(ctx, addr, run)
		}
		c.d.learn(addr)
		nc, derr := redis.DialContext(ctx, "tcp", addr, c.d.opts...)
		if derr != nil {
			c.broken = true
			return nil, fmt.Errorf("follow MOVED to %s: %w", addr, derr)
		}
		c.c.Close()
		c.c, c.addr = nc, addr
		reply, err = run(c.c)
	}
	return reply, err
}

// ask sends ASKING and the command to addr, once, on a connection of
// its own.
func (c *clusterConn) ask(ctx context.Context, addr string, run func(redis.Conn) (interface{}, error)) (interface{}, error) {
	nc, err := redis.DialContext(ctx, "tcp", addr, c.d.opts...)
	if err != nil {
		return nil, fmt.Errorf("follow ASK to %s: %w", addr, err)
	}
	defer nc.Close()
	if _, err := nc.Do("ASKING"); err != nil {
		return nil, fmt.Errorf("follow ASK to %s: %w", addr, err)
	}
	return run(nc)
}

func (c *clusterConn) Do(cmd string, args ...interface{}) (interface{}, error) {
	return c.do(context.Background(), func(n redis.Conn) (interface{}, error) { return n.Do(cmd, args...) }, cmd)
}

func (c *clusterConn) DoWithTimeout(timeout time.Duration, cmd string, args ...interface{}) (interface{}, error) {
	return c.do(context.Background(), func(n redis.Conn) (interface{}, error) {
		return redis.DoWithTimeout(n, timeout, cmd, args...)
	}, cmd)
}

func (c *clusterConn) DoContext(ctx context.Context, cmd string, args ...interface{}) (interface{}, error) {
	return c.do(ctx, func(n redis.Conn) (interface{}, error) { return redis.DoContext(n, ctx, cmd, args...) }, cmd)
}

func (c *clusterConn) Send(cmd string, args ...interface{}) error {
	if c.broken {
		return errMovedBroken
	}
	if pins(cmd) {
		c.pinned = true
	}
	c.pending++
	return c.c.Send(cmd, args...)
}

func (c *clusterConn) Flush() error { return c.c.Flush() }

func (c *clusterConn) Receive() (interface{}, error) {
	reply, err := c.c.Receive()
	c.received(reply, err)
	return reply, err
}

func (c *clusterConn) ReceiveWithTimeout(timeout time.Duration) (interface{}, error) {
	reply, err := redis.ReceiveWithTimeout(c.c, timeout)
	c.received(reply, err)
	return reply, err
}

func (c *clusterConn) ReceiveContext(ctx context.Context) (interface{}, error) {
	reply, err := redis.ReceiveContext(c.c, ctx)
	c.received(reply, err)
	return reply, err
}

func (c *clusterConn) received(reply interface{}, err error) {
	if c.pending > 0 {
		c.pending--
	}
	if err == nil {
		if e, ok := reply.(redis.Error); ok {
			err = e
		}
	}
	if err != nil {
		c.noteErr(err)
	}
}

func (c *clusterConn) Err() error {
	if c.broken {
		return errMovedBroken
	}
	return c.c.Err()
}

func (c *clusterConn) Close() error { return c.c.Close() }
