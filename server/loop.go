package server

import (
	"context"
	"sync"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// taskKind says what a queued task does on the loop.
type taskKind uint8

const (
	taskFrame   taskKind = iota // write frame to c
	taskClose                   // close c with reason
	taskHold                    // start holding c's live frames: its user has a delivery gap (hold.go)
	taskRelease                 // a gap repair up to seq was written: release what c holds (hold.go)
)

// task is one piece of work handed to a loop by another goroutine.
type task struct {
	c      *conn
	frame  []byte // shared by every recipient; never modified after it is queued
	seq    int64  // the inbox seq the frame carries; 0 for frames outside the inbox order
	kind   taskKind
	order  taskOrder // how it is ordered against a replay of c (hold.go)
	reason closeReason
	// accepted stamps an ACK with its message's accept time (acceptStamp) for the
	// latency histogram; 0 for every other task. It fits the struct's padding.
	accepted uint32
}

// loop is imgate's state of one gnet event loop: its connections and its inbound task
// queue. Other goroutines hand work to the loop through push, which wakes the loop once
// per batch (Execute), not once per frame.
//
// Lock order: loop.mu is a leaf; never take another lock while holding it.
type loop struct {
	srv *Server
	el  gnet.EventLoop

	mu        sync.Mutex
	q         []task // guarded by mu
	scheduled bool   // guarded by mu: a drain is queued on the loop

	// Owned by the loop goroutine.
	spare   []task
	groups  []connFrames  // drain's frames per connection, reused
	groupOf map[*conn]int // index in groups
	conns   []*conn
	holds   map[*conn]*hold // connections replaying (hold.go)
	out     []byte          // replies gathered during one OnTraffic
	acks    []uint32        // accept stamps of the ACKs one drain writes (metrics.go)
	now     int64           // Unix nanoseconds, refreshed at every callback

	drainFn gnet.RunnableFunc
	sweepFn gnet.RunnableFunc
}

func newLoop(srv *Server, el gnet.EventLoop) *loop {
	l := &loop{srv: srv, el: el, groupOf: make(map[*conn]int)}
	l.drainFn = func(context.Context) error { l.drain(); return nil }
	l.sweepFn = func(context.Context) error { l.sweep(); return nil }
	return l
}

// push queues tasks for the loop and wakes it if it was idle. Any goroutine may call it.
// A frame that would take its connection over MaxOutboundBytes is replaced by a single
// 4503 close (the policy of the bound: the slow consumer goes, the loop stays healthy),
// or 1013 when it is a replay's frame: the replay paces itself under half the bound
// (replayer.pushSome), so only other traffic can have left it no room, and a replay
// that cannot go on closes with 1013 (PROTOCOL §5), never 4503.
func (l *loop) push(tasks []task) {
	limit := l.srv.cfg.MaxOutboundBytes
	queued := 0
	l.mu.Lock()
	for _, t := range tasks {
		c := t.c
		if c.overflow {
			continue
		}
		if t.kind == taskFrame {
			if int(c.queued)+len(t.frame) > limit {
				c.overflow = true
				reason := closeSlowConsumer
				if t.order != orderLive {
					reason = closeTryLater
				}
				t = task{c: c, kind: taskClose, reason: reason}
			} else {
				c.queued += int32(len(t.frame))
				queued += len(t.frame)
			}
		}
		l.q = append(l.q, t)
	}
	wake := !l.scheduled && len(l.q) > 0
	if wake {
		l.scheduled = true
	}
	l.mu.Unlock()
	l.srv.stats.queued.Add(int64(queued))
	if wake {
		l.wake()
	}
}

// backlog asks c's loop for the bytes waiting for c (loop queue and gnet's outbound
// buffer) and whether c is still open. Any goroutine but the loop's may call it; it waits
// for the loop, at most until ctx ends (then it reports the connection closed).
func (l *loop) backlog(ctx context.Context, c *conn) (int, bool) {
	type answer struct {
		n    int
		open bool
	}
	ch := make(chan answer, 1)
	err := l.el.Execute(ctx, gnet.RunnableFunc(func(context.Context) error {
		if c.closed || c.state == stateClosing {
			ch <- answer{}
			return nil
		}
		l.mu.Lock()
		queued := int(c.queued)
		l.mu.Unlock()
		ch <- answer{n: queued + c.gc.OutboundBuffered(), open: true}
		return nil
	}))
	if err != nil {
		return 0, false
	}
	select {
	case a := <-ch:
		return a.n, a.open
	case <-ctx.Done():
		return 0, false
	}
}

func (l *loop) wake() {
	if err := l.el.Execute(context.Background(), l.drainFn); err != nil {
		// The engine is shutting down: nothing will be written any more.
		l.srv.log.Debug("loop wake failed", "err", err)
	}
}

// drain runs on the loop: it writes every queued frame.
func (l *loop) drain() {
	l.mu.Lock()
	q := l.q
	l.q = l.spare[:0]
	l.scheduled = false
	dequeued := 0
	for _, t := range q {
		if t.kind == taskFrame {
			t.c.queued -= int32(len(t.frame))
			dequeued += len(t.frame)
		}
	}
	l.mu.Unlock()
	l.srv.stats.queued.Add(-int64(dequeued))

	// Group the frames by connection, keeping each connection's order, so that every
	// connection gets one writev per drain instead of one write per frame: at
	// saturation the write syscalls are most of a loop's time.
	for i := range q {
		t := &q[i]
		c := t.c
		if c.closed || c.state == stateClosing {
			continue
		}
		g, ok := l.groupOf[c]
		if !ok {
			g = len(l.groups)
			l.groupOf[c] = g
			if g < cap(l.groups) {
				l.groups = l.groups[:g+1] // reuse the slot and its frames' capacity
			} else {
				l.groups = append(l.groups, connFrames{})
			}
			l.groups[g].c = c
		}
		grp := &l.groups[g]
		switch {
		case grp.close != closeNone:
			// Closing after earlier frames: later ones are dropped.
		case t.kind == taskFrame:
			if t.accepted != 0 {
				l.acks = append(l.acks, t.accepted)
			}
			grp.replay = grp.replay || t.order != orderLive
			var over bool
			grp.frames, over = l.order(t, grp.frames)
			if over {
				l.dropHold(c)
				grp.close = closeTryLater
			}
		case t.kind == taskHold:
			l.startGapHold(c, t.seq)
		case t.kind == taskRelease:
			grp.frames = l.releaseGap(c, t.seq, grp.frames)
		default:
			grp.close = t.reason
		}
		*t = task{}
	}
	clear(q) // tasks skipped above still point at closed connections
	l.spare = q[:0]

	limit := l.srv.cfg.MaxOutboundBytes
	for i := range l.groups {
		grp := &l.groups[i]
		c := grp.c
		err := writeFrames(c, grp.frames)
		switch {
		case err != nil:
			l.srv.log.Debug("write failed", "conn", c.id, "err", err)
		case grp.close != closeNone:
			l.closeConn(c, grp.close)
		case c.gc.OutboundBuffered() > limit && grp.replay:
			l.closeConn(c, closeTryLater) // see push
		case c.gc.OutboundBuffered() > limit:
			l.closeConn(c, closeSlowConsumer)
		}
		clear(grp.frames)
		*grp = connFrames{frames: grp.frames[:0]}
	}
	l.groups = l.groups[:0]
	clear(l.groupOf)
	if len(l.acks) > 0 {
		now := time.Now()
		for _, st := range l.acks {
			l.srv.stats.written.observe(sinceStamp(st, now))
		}
		l.acks = l.acks[:0]
	}
}

// maxIov bounds the frames of one writev: Linux refuses more than 1024 (EINVAL), and
// gnet's direct Writev does not split them, so a long list would drop the connection.
const maxIov = 256

// writeFrames writes frames to c in order, in writevs of at most maxIov frames.
func writeFrames(c *conn, frames [][]byte) error {
	for len(frames) > 0 {
		n := min(len(frames), maxIov)
		var err error
		if n == 1 {
			_, err = c.gc.Write(frames[0])
		} else {
			_, err = c.gc.Writev(frames[:n])
		}
		if err != nil {
			return err
		}
		frames = frames[n:]
	}
	return nil
}

// connFrames are the frames one drain writes to one connection, then maybe a close.
type connFrames struct {
	c      *conn
	frames [][]byte
	close  closeReason
	replay bool // frames of a replay or repair among them
}

// closeConn sends a close frame with reason's code (when the connection was upgraded)
// and closes it. It runs on the loop.
func (l *loop) closeConn(c *conn, r closeReason) { l.closeConnDetail(c, r, "") }

// closeConnDetail is closeConn with a detail for its log line (closelog.go).
func (l *loop) closeConnDetail(c *conn, r closeReason, detail string) {
	if c.closed || c.state == stateClosing {
		return
	}
	if c.state != stateHandshake && r.Code() != 0 {
		l.out = appendCloseFrame(l.out, r)
	}
	l.srv.countClose(r) // before the write: a client that saw the close finds it counted
	l.srv.logClose(c, r, detail)
	l.flush(c)
	c.state = stateClosing
	_ = c.gc.Close()
}

// flush writes the replies gathered in l.out to c. It runs on the loop.
func (l *loop) flush(c *conn) {
	if len(l.out) == 0 {
		return
	}
	if _, err := c.gc.Write(l.out); err != nil {
		l.srv.log.Debug("write failed", "conn", c.id, "err", err)
	}
	l.out = l.out[:0]
}

// sweep runs on the loop: it closes connections whose init or idle timer expired.
func (l *loop) sweep() {
	now := time.Now().UnixNano()
	l.now = now
	idle := int64(l.srv.cfg.IdleTimeout)
	// Iterate backwards: closeConn does not remove from l.conns (OnClose does, later).
	for i := len(l.conns) - 1; i >= 0; i-- {
		c := l.conns[i]
		switch c.state {
		case stateHandshake, stateAwaitInit:
			if now > c.timer {
				l.closeConn(c, closeTimeout)
			}
		case stateBound:
			if now-c.timer > idle {
				l.closeConn(c, closeTimeout)
			}
		}
	}
}

// closeAll closes every connection with reason; used when the node stops.
func (l *loop) closeAll(r closeReason) {
	for i := len(l.conns) - 1; i >= 0; i-- {
		l.closeConn(l.conns[i], r)
	}
}

// addConn and removeConn keep l.conns (for sweeps) in O(1).
func (l *loop) addConn(c *conn) {
	c.slot = int32(len(l.conns))
	l.conns = append(l.conns, c)
}

func (l *loop) removeConn(c *conn) {
	l.dropHold(c)
	last := l.conns[len(l.conns)-1]
	l.conns[c.slot] = last
	last.slot = c.slot
	l.conns[len(l.conns)-1] = nil
	l.conns = l.conns[:len(l.conns)-1]
	if cap(l.conns) > 64 && len(l.conns) < cap(l.conns)/4 {
		l.conns = append([]*conn(nil), l.conns...)
		for i, d := range l.conns {
			d.slot = int32(i)
		}
	}
}
