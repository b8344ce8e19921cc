// Package faultproxy is a loopback TCP proxy that injects network faults
// between a client (resqued) and a server (redis-server), for the fault
// suite. It owns nothing but the bytes it forwards: it does not parse the
// Redis protocol, so a "reply" is whatever the server sends back.
//
// Faults are modes, switched at any time and applied to every connection,
// old and new, from the next chunk of bytes on:
//
//   - Latency(d): each chunk from the server is held for d before it is
//     passed on (set d past the client's read timeout to make it give up
//     on a command that the server did run);
//   - DropReplies(thenReset): requests still reach the server, replies are
//     swallowed; with thenReset the connection is reset (RST) as soon as a
//     reply is swallowed, else it hangs;
//   - ResetMidRequest(): the next chunk a client sends is cut in half: the
//     first half reaches the server, then both sides are reset;
//   - Bandwidth(n): both directions are throttled to about n bytes/s;
//   - CutAll(): every open connection is reset at once (new ones are
//     accepted unless Refuse(true)).
//
// Retarget(addr) re-points the proxy, as a DNS name is re-pointed in a
// managed failover: new connections go to addr, open ones stay where
// they were.
//
// Normal() ends every mode. Only loopback addresses are used.
package faultproxy

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards connections from Addr to a target address.
type Proxy struct {
	// Addr is the host:port clients dial (127.0.0.1, a free port).
	Addr string

	target string
	ln     net.Listener

	mu      sync.Mutex
	mode    mode
	conns   map[*pair]struct{}
	refuse  bool
	closed  bool
	changed chan struct{} // closed and replaced whenever the mode changes

	wg sync.WaitGroup

	// Counters, for tests and fault logs.
	accepted, swallowed, resets atomic.Int64
}

type mode struct {
	latency   time.Duration
	drop      bool
	dropReset bool
	midReset  bool
	bandwidth int // bytes per second; 0: unlimited
}

type pair struct {
	client, server *net.TCPConn
	once           sync.Once
}

// reset closes both sides with SO_LINGER 0, so the peers see a reset
// rather than an orderly close.
func (p *pair) reset() {
	p.once.Do(func() {
		for _, c := range []*net.TCPConn{p.client, p.server} {
			_ = c.SetLinger(0)
			_ = c.Close()
		}
	})
}

// New listens on a free loopback port and forwards to target (host:port).
// Close it when done.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln,
		conns: map[*pair]struct{}{}, changed: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Close stops listening, resets every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.CutAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		client := c.(*net.TCPConn)
		p.mu.Lock()
		refuse, closed, target := p.refuse, p.closed, p.target
		p.mu.Unlock()
		if refuse || closed {
			_ = client.SetLinger(0)
			_ = client.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			_ = client.SetLinger(0)
			_ = client.Close()
			continue
		}
		pr := &pair{client: client, server: s.(*net.TCPConn)}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			pr.reset()
			continue
		}
		p.conns[pr] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pump(pr, pr.client, pr.server, true)
		go p.pump(pr, pr.server, pr.client, false)
	}
}

func (p *Proxy) current() (mode, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.changed
}

// pump copies src to dst chunk by chunk, applying the mode in force when
// each chunk arrives. up is the client-to-server direction.
func (p *Proxy) pump(pr *pair, src, dst *net.TCPConn, up bool) {
	defer p.wg.Done()
	defer func() {
		pr.reset()
		p.mu.Lock()
		delete(p.conns, pr)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.forward(pr, dst, buf[:n], up) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// forward passes one chunk on; false ends the connection.
func (p *Proxy) forward(pr *pair, dst *net.TCPConn, b []byte, up bool) bool {
	m, changed := p.current()
	if up && m.midReset {
		p.mu.Lock()
		p.mode.midReset = false // one cut per call to ResetMidRequest
		p.bump()
		p.mu.Unlock()
		_, _ = dst.Write(b[:len(b)/2])
		p.resets.Add(1)
		pr.reset()
		return false
	}
	if !up && m.drop {
		p.swallowed.Add(1)
		if m.dropReset {
			p.resets.Add(1)
			pr.reset()
			return false
		}
		return true // swallowed; the connection hangs
	}
	if !up && m.latency > 0 {
		t := time.NewTimer(m.latency)
		select {
		case <-t.C:
		case <-changed:
			// Normal() or another mode: deliver now rather than keep a
			// client waiting for a fault that is over. The delay is
			// what it was while the fault lasted.
			t.Stop()
		}
	}
	for len(b) > 0 {
		chunk := b
		if m.bandwidth > 0 {
			// Send at most a tenth of a second's worth, then wait that
			// tenth of a second.
			step := max(m.bandwidth/10, 1)
			if len(chunk) > step {
				chunk = chunk[:step]
			}
		}
		if _, err := dst.Write(chunk); err != nil {
			return false
		}
		b = b[len(chunk):]
		if m.bandwidth > 0 {
			time.Sleep(time.Duration(len(chunk)) * time.Second / time.Duration(m.bandwidth))
		}
	}
	return true
}

// bump wakes every goroutine waiting on the old mode. p.mu is held.
func (p *Proxy) bump() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) set(f func(*mode)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.mode)
	p.bump()
}

// Normal ends every fault: bytes flow unchanged again, and new
// connections are accepted.
func (p *Proxy) Normal() {
	p.set(func(m *mode) { *m = mode{} })
	p.Refuse(false)
}

// Latency holds every reply chunk for d (0: none).
func (p *Proxy) Latency(d time.Duration) { p.set(func(m *mode) { m.latency = d }) }

// DropReplies swallows every reply chunk while requests still reach the
// server. With thenReset the connection is reset at the first swallowed
// reply; without, it stays open and silent.
func (p *Proxy) DropReplies(thenReset bool) {
	p.set(func(m *mode) { m.drop, m.dropReset = true, thenReset })
}

// ResetMidRequest cuts the next request chunk any client sends in half:
// the first half reaches the server, then the connection is reset.
func (p *Proxy) ResetMidRequest() { p.set(func(m *mode) { m.midReset = true }) }

// Bandwidth throttles both directions to about bytesPerSec (0: no limit).
func (p *Proxy) Bandwidth(bytesPerSec int) { p.set(func(m *mode) { m.bandwidth = bytesPerSec }) }

// Refuse makes the proxy reset new connections as soon as they are
// accepted (true) or forward them again (false).
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = on
}

// Retarget sends new connections to target (host:port) from now on;
// connections already open stay with the server they reached.
func (p *Proxy) Retarget(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
}

// CutAll resets every open connection and returns how many it reset.
func (p *Proxy) CutAll() int {
	p.mu.Lock()
	prs := make([]*pair, 0, len(p.conns))
	for pr := range p.conns {
		prs = append(prs, pr)
	}
	p.mu.Unlock()
	for _, pr := range prs {
		p.resets.Add(1)
		pr.reset()
	}
	return len(prs)
}

// Stats reports connections accepted, reply chunks swallowed and
// connections reset so far.
func (p *Proxy) Stats() (accepted, swallowed, resets int64) {
	return p.accepted.Load(), p.swallowed.Load(), p.resets.Load()
}

// Open is the number of connections currently forwarded.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}
