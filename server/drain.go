package server

import (
	"context"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// drainStep is the interval between two rounds of closes of Drain: a window of W closes
// the clients in W/drainStep rounds (at least one).
const drainStep = 100 * time.Millisecond

// Drain stops taking connections (an upgrade gets 503 "node is draining") and closes
// every client with 1001 ("ask the dispatcher again"), spread evenly over window: each
// round closes its share of the connections still open, so that the clients do not all
// reconnect to the other nodes in the same instant. It returns when no connection is
// left, or with ctx's error when ctx ends first. The node keeps running, draining, until
// Shutdown. Calling it again (or concurrently) is harmless: it only closes faster.
func (s *Server) Drain(ctx context.Context, window time.Duration) error {
	if !s.draining.Swap(true) {
		s.log.Info("draining: closing clients with 1001", "open", s.stats.open.Load(), "window", window)
	}
	rounds := max(int(window/drainStep), 1)
	t := time.NewTicker(window / time.Duration(rounds))
	defer t.Stop()
	for left := rounds; left >= 1 && s.stats.open.Load() > 0; left-- {
		for _, l := range s.loopList() {
			_ = l.el.Execute(ctx, gnet.RunnableFunc(func(context.Context) error {
				l.closeShare(closeGoingAway, left)
				return nil
			}))
		}
		if left == 1 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for s.stats.open.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		}
	}
	s.log.Info("drained: no client left")
	return nil
}

// closeShare closes 1/rounds of the loop's connections that are not closing yet (at
// least one while any is left) with reason. It runs on the loop.
func (l *loop) closeShare(r closeReason, rounds int) {
	live := 0
	for _, c := range l.conns {
		if !c.closed && c.state != stateClosing {
			live++
		}
	}
	n := (live + rounds - 1) / rounds
	for i := len(l.conns) - 1; i >= 0 && n > 0; i-- {
		if c := l.conns[i]; !c.closed && c.state != stateClosing {
			l.closeConn(c, r)
			n--
		}
	}
}
