package server

import (
	"log/slog"
	"testing"
	"time"
)

// newTestTracker returns a server with a session table and a replay queue (no workers:
// tests take the jobs) and its gap tracker.
func newTestTracker(delay time.Duration) (*Server, *gapTracker) {
	s := &Server{log: slog.New(slog.DiscardHandler), sessions: newSessions()}
	s.cfg.ReplayQueue = 16
	s.replays = newReplayer(s)
	return s, newGapTracker(s, delay)
}

// TestGapNotMaskedBySecondDevice: device A is at seq 94 when 95 is lost; device B of the
// same user binds with the store's newest seq 95; the next live seq 96 must still
// schedule a repair of 95 (for A), not look contiguous.
func TestGapNotMaskedBySecondDevice(t *testing.T) {
	s, g := newTestTracker(10 * time.Millisecond)
	a := &conn{id: 1, user: "u"}
	s.sessions.add(a)
	g.start("u", 94)
	b := &conn{id: 2, user: "u"}
	s.sessions.add(b)
	g.start("u", 95)
	g.seen("u", 96)
	deadline := time.Now().Add(5 * time.Second)
	for len(s.replays.jobs) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no repair scheduled for both devices (%d jobs)", len(s.replays.jobs))
		}
		time.Sleep(5 * time.Millisecond)
	}
	j := <-s.replays.jobs
	if !j.repair || j.cursor != 94 || j.upTo != 96 {
		t.Fatalf("repair job %+v, want after 94 up to 96", j)
	}
}

// TestGapContiguousNoRepair: in-order deliveries schedule nothing.
func TestGapContiguousNoRepair(t *testing.T) {
	s, g := newTestTracker(time.Millisecond)
	s.sessions.add(&conn{id: 1, user: "u"})
	g.start("u", 10)
	for seq := int64(11); seq <= 20; seq++ {
		g.seen("u", seq)
	}
	if u := g.shard("u").users["u"]; u.frontier != 20 || u.pending {
		t.Fatalf("frontier %d pending %v, want 20 and no repair", u.frontier, u.pending)
	}
}
