package server

import (
	"strconv"
	"testing"
	"time"
)

// holdStep is one task as a loop's drain handles it for one connection.
func holdStep(l *loop, t task, out [][]byte) [][]byte {
	switch t.kind {
	case taskHold:
		l.startGapHold(t.c, t.seq)
	case taskRelease:
		out = l.releaseGap(t.c, t.seq, out)
	default:
		out, _ = l.order(&t, out)
	}
	return out
}

// TestGapHoldOverlappingGaps: a second gap of the user opens (taskHold 12, live 12 held)
// while the first gap's repair (9..10) runs; the first repair's release must not let 12
// out before the second repair's 11, nor let the live 11 that follows it pass 12. The
// device sees 9, 10, 11, 12 once each, in order (PROTOCOL §5).
func TestGapHoldOverlappingGaps(t *testing.T) {
	s := &Server{}
	s.cfg.MaxOutboundBytes = 1 << 20
	l := &loop{srv: s}
	c := &conn{id: 1, user: "u"}
	frame := func(seq int64, o taskOrder) task {
		return task{c: c, frame: []byte(strconv.FormatInt(seq, 10)), seq: seq, order: o}
	}
	steps := []task{
		{c: c, kind: taskHold, seq: 10}, // 9 is missing: gap 1
		frame(10, orderLive),
		frame(9, orderRepair), // repair 1: (8, 10]
		frame(10, orderRepair),
		{c: c, kind: taskHold, seq: 12}, // 11 is missing: gap 2, during repair 1
		frame(12, orderLive),
		{c: c, kind: taskRelease, seq: 10}, // repair 1 is written
		frame(11, orderLive),               // 11 arrives live from the other saver
		frame(11, orderRepair),             // repair 2: (10, 12]
		frame(12, orderRepair),
		{c: c, kind: taskRelease, seq: 12},
		frame(13, orderLive),
	}
	var out [][]byte
	for _, st := range steps {
		out = holdStep(l, st, out)
	}
	var got []string
	for _, f := range out {
		got = append(got, string(f))
	}
	want := []string{"9", "10", "11", "12", "13"}
	if len(got) != len(want) {
		t.Fatalf("written %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("written %v, want %v", got, want)
		}
	}
	if l.holds[c] != nil {
		t.Fatalf("hold still open after the last repair: %+v", l.holds[c])
	}
}

// TestGapHoldReleasesContiguous: a release below the hold's until writes the held frames
// that continue the connection's seqs without a hole and keeps the rest.
func TestGapHoldReleasesContiguous(t *testing.T) {
	s := &Server{}
	s.cfg.MaxOutboundBytes = 1 << 20
	l := &loop{srv: s}
	c := &conn{id: 1, user: "u"}
	frame := func(seq int64) task {
		return task{c: c, frame: []byte(strconv.FormatInt(seq, 10)), seq: seq}
	}
	var out [][]byte
	for _, st := range []task{
		{c: c, kind: taskHold, seq: 9}, {c: c, kind: taskHold, seq: 14},
		frame(9), frame(10), frame(14), frame(12),
		{c: c, kind: taskRelease, seq: 8}, // a repair up to 8: nothing was missing below 9
	} {
		out = holdStep(l, st, out)
	}
	if len(out) != 2 || string(out[0]) != "9" || string(out[1]) != "10" {
		t.Fatalf("written %q, want 9, 10", out)
	}
	if h := l.holds[c]; h == nil || len(h.frames) != 2 || h.bytes != 4 {
		t.Fatalf("hold %+v, want 12 and 14 still held", h)
	}
}

// TestGapCheckWaitsForRunningRepair: a second gap's check does not start a repair of the
// user while the first one's job has not ended (two repairs of one device at once could
// push their frames out of order); it does once the job reports it is done.
func TestGapCheckWaitsForRunningRepair(t *testing.T) {
	s, g := newTestTracker(time.Millisecond)
	s.sessions.add(&conn{id: 1, user: "u"})
	g.start("u", 8)
	g.seen("u", 10)
	j := waitJob(t, s)
	if j.cursor != 8 || j.upTo != 10 {
		t.Fatalf("first repair %+v, want after 8 up to 10", j)
	}
	g.seen("u", 12) // the first repair is still running
	g.check("u")
	if n := len(s.replays.jobs); n != 0 {
		t.Fatalf("%d repairs queued while the first runs, want 0", n)
	}
	g.repaired("u")
	j = waitJob(t, s)
	if j.cursor != 10 || j.upTo != 12 {
		t.Fatalf("second repair %+v, want after 10 up to 12", j)
	}
}

// TestGapCatchUpWaitsForRunningRepair: a catch-up asked for while a gap repair of the user
// runs is not submitted beside it (its higher seqs could reach the device first); the
// check after the repair catches the user up from the repair's end, behind a hold.
func TestGapCatchUpWaitsForRunningRepair(t *testing.T) {
	s, g := newTestTracker(time.Millisecond)
	l := &loop{srv: s, scheduled: true} // push queues without waking a gnet loop
	s.sessions.add(&conn{id: 1, user: "u", loop: l})
	g.start("u", 8)
	g.seen("u", 10)
	if j := waitJob(t, s); j.cursor != 8 || j.upTo != 10 {
		t.Fatalf("gap repair %+v, want after 8 up to 10", j)
	}
	s.inbox.(seqInbox).newest["u"] = 12 // the store holds more than was delivered
	g.catchUp()
	if n := len(s.replays.jobs); n != 0 {
		t.Fatalf("%d catch-ups queued while the repair runs, want 0", n)
	}
	g.repaired("u")
	if j := waitJob(t, s); j.cursor != 10 || j.upTo != toNewest {
		t.Fatalf("catch-up %+v, want after 10 up to the newest", j)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.q) != 1 || l.q[0].kind != taskHold {
		t.Fatalf("loop queue %+v, want the catch-up's hold", l.q)
	}
}

func waitJob(t *testing.T, s *Server) replayJob {
	t.Helper()
	select {
	case j := <-s.replays.jobs:
		return j
	case <-time.After(5 * time.Second):
		t.Fatal("no repair scheduled")
		return replayJob{}
	}
}
