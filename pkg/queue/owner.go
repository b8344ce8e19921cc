package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// ErrIDInUse is returned when another live process holds a worker id's
// lease.
var ErrIDInUse = errors.New("worker id held by another live process")

// ErrNotOwner is returned by the reserve and outcome scripts, and by
// Lease.Renew, when another process has taken over this worker's id: the
// caller must stop working under it.
var ErrNotOwner = errors.New("worker id taken over by another process")

// Lease is one process's claim on a worker id: OwnerKey holds Token for
// TTL, renewed by Renew. Reserve and FinishJob act only while the lease
// is this process's (or lapsed and unclaimed, when they take it back), so
// two processes that share an id never both run or record its jobs.
type Lease struct {
	c     *Client
	ID    string
	Token string
	TTL   time.Duration

	// renewed is when (UnixNano, the time the call was sent) the lease
	// was last extended: by Acquire, Renew, or a reserve or outcome
	// script, each of which extends it as it checks it.
	renewed atomic.Int64
	// held are the concurrency slots of the job the worker runs,
	// renewed with the lease (Renew), or nil.
	held atomic.Pointer[heldSlots]
}

// heldSlots are the slots a lease renews, and their namespace.
type heldSlots struct {
	ns    string
	slots []*Slot
}

// hold makes the lease renew slots (of namespace ns) with itself, in
// place of any it renewed. l may be nil.
func (l *Lease) hold(ns string, slots []*Slot) {
	if l != nil && len(slots) > 0 {
		l.held.Store(&heldSlots{ns: ns, slots: slots})
	}
}

// unhold stops renewing slots (slots taken since are kept). l may be
// nil.
func (l *Lease) unhold(slots []*Slot) {
	if l == nil || len(slots) == 0 {
		return
	}
	if h := l.held.Load(); h != nil && h.slots[0] == slots[0] {
		l.held.CompareAndSwap(h, nil)
	}
}

// NewLease returns a lease on worker id under token, or under a fresh
// random one when token is empty. A supervisor picks its worker's token,
// so that after the worker died it can clean up under that same lease and
// no other. The lease is not held until Acquire succeeds.
func (c *Client) NewLease(id, token string, ttl time.Duration) *Lease {
	if token == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		token = hex.EncodeToString(b[:])
	}
	return &Lease{c: c, ID: id, Token: token, TTL: ttl}
}

// leaseScript: KEYS[1] the owner key; ARGV[1] the token, ARGV[2] the TTL
// in ms, ARGV[3] "1" to take the key only when free (acquire), "0" to
// renew (also taking a lapsed key back). Returns 1 when held, or the
// remaining PTTL of another holder's lease as a negative number.
var leaseScript = redis.NewScript(1, `
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  local left = redis.call('PTTL', KEYS[1])
  if left < 1 then left = 1 end
  return -left
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// Acquire takes the lease if no other process holds it. When another one
// does, it returns ErrIDInUse and how long that lease has left.
func (l *Lease) Acquire(ctx context.Context) (left time.Duration, err error) {
	return l.run(ctx, "acquire", "1")
}

// Renew extends the lease. It returns ErrNotOwner when another process
// holds the id now (this one lapsed and was replaced).
func (l *Lease) Renew(ctx context.Context) error {
	_, err := l.run(ctx, "renew", "0")
	if errors.Is(err, ErrIDInUse) {
		return fmt.Errorf("renew lease on %s: %w", l.ID, ErrNotOwner)
	}
	return err
}

func (l *Lease) run(ctx context.Context, what, acquire string) (time.Duration, error) {
	sent := time.Now()
	conn, err := l.c.pool.GetContext(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s lease on %s: %w", what, l.ID, err)
	}
	defer conn.Close()
	n, err := redis.Int64(leaseScript.Do(conn, OwnerKey(l.c.ns, l.ID), l.Token, l.TTL.Milliseconds(), acquire))
	if err != nil {
		return 0, fmt.Errorf("%s lease on %s: %w", what, l.ID, err)
	}
	if n < 0 {
		return time.Duration(-n) * time.Millisecond, fmt.Errorf("%s lease on %s: %w", what, l.ID, ErrIDInUse)
	}
	l.renewed.Store(sent.UnixNano())
	if h := l.held.Load(); h != nil {
		// The slots of the job running lapse with the lease: extend
		// them too, together, only while they are still held (XX: a
		// slot freed meanwhile stays free).
		if _, err := slotRenewScript.Do(conn, slotRenewArgs(h.ns, h.slots, l.TTL, "XX")...); err != nil {
			return 0, fmt.Errorf("%s lease on %s: renew slots of %s: %w", what, l.ID, SlotNames(h.slots), err)
		}
	}
	return 0, nil
}

// Renewed returns when the lease was last extended (the time the call
// that extended it was sent), or the zero time.
func (l *Lease) Renewed() time.Time {
	if n := l.renewed.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// renewedAt notes that a script sent at sent checked and extended the
// lease, unless its reply says another process owns it (the reserve
// script's {"notowner"}, the outcome scripts' -1). l may be nil.
func (l *Lease) renewedAt(sent time.Time, reply interface{}) {
	if l == nil {
		return
	}
	switch v := reply.(type) {
	case int64:
		if v < 0 {
			return
		}
	case []interface{}:
		if len(v) > 0 {
			if tag, _ := v[0].([]byte); string(tag) == "notowner" {
				return
			}
		}
	}
	l.renewed.Store(sent.UnixNano())
}

// LeaseHeld reports whether some process holds a live lease on worker id,
// and for how much longer.
func (c *Client) LeaseHeld(ctx context.Context, id string) (bool, time.Duration, error) {
	ms, err := redis.Int64(c.do(ctx, "PTTL", OwnerKey(c.ns, id)))
	if err != nil {
		return false, 0, fmt.Errorf("read lease on %s: %w", id, err)
	}
	switch {
	case ms == -2: // no key
		return false, 0, nil
	case ms < 0: // no expiry: held until released
		return true, 0, nil
	}
	return true, time.Duration(ms) * time.Millisecond, nil
}

// LeaseToken returns the token of the lease held on worker id, or "" when
// none is.
func (c *Client) LeaseToken(ctx context.Context, id string) (string, error) {
	v, err := redis.String(c.do(ctx, "GET", OwnerKey(c.ns, id)))
	if errors.Is(err, redis.ErrNil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read lease on %s: %w", id, err)
	}
	return v, nil
}

// ownerLua defines resqued_owner(key, token, ttl): with token empty it
// checks nothing; otherwise it returns false when another process holds
// key, and (re)takes a lapsed key, or extends the lease that is ttl's
// (so a worker that reserves or records jobs needs no renewals of its
// own). Scripts that act for a worker start with it.
const ownerLua = `
local function resqued_owner(key, token, ttl)
  if token == '' then return true end
  local cur = redis.call('GET', key)
  if cur == token then
    redis.call('PEXPIRE', key, ttl)
    return true
  end
  if cur then return false end
  redis.call('SET', key, token, 'PX', ttl)
  return true
end
`

// ownerArgs are the token and TTL arguments of ownerLua for l (nil: no
// check).
func (l *Lease) ownerArgs() (string, int64) {
	if l == nil {
		return "", 0
	}
	return l.Token, l.TTL.Milliseconds()
}
