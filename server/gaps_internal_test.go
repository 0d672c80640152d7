package server

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"imgate/message"
)

// seqInbox is a store with nothing to replay whose newest seq per user the test sets
// (0 for users it does not name); it counts its newest-seq reads.
type seqInbox struct {
	newest map[string]int64
	reads  *int
	onRead func() // nil, or called in each LastSeqs before it answers
}

func (seqInbox) Replay(context.Context, string, int64, int) ([]message.Entry, error) {
	return nil, nil
}

func (in seqInbox) LastSeqs(_ context.Context, users []string) ([]int64, error) {
	*in.reads++
	if in.onRead != nil {
		in.onRead()
	}
	out := make([]int64, len(users))
	for i, u := range users {
		out[i] = in.newest[u]
	}
	return out, nil
}

// newTestTracker returns a server with a session table, a replay queue (no workers:
// tests take the jobs) and an empty seqInbox, and its gap tracker.
func newTestTracker(delay time.Duration) (*Server, *gapTracker) {
	s := &Server{log: slog.New(slog.DiscardHandler), sessions: newSessions()}
	s.inbox = seqInbox{newest: map[string]int64{}, reads: new(int)}
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

// TestCatchUpRepairsOnlyUsersBehind: a catch-up (after a broker restart, or presence that
// went missing) reads the newest seqs of the bound users, maxBatch per query, and
// repairs only the users the store holds more for. Repairing every bound user would
// overflow the replay queue of a node holding thousands (each closed with 1013).
func TestCatchUpRepairsOnlyUsersBehind(t *testing.T) {
	s, g := newTestTracker(time.Hour)
	in := s.inbox.(seqInbox)
	l := &loop{srv: s, scheduled: true} // pushes queue without waking a gnet loop
	const users = maxBatch + 44
	for i := range users {
		u := fmt.Sprintf("u%d", i)
		s.sessions.add(&conn{id: uint64(i + 1), user: u, loop: l})
		g.start(u, 5)
		in.newest[u] = 5
	}
	in.newest["u7"], in.newest["u280"] = 9, 6
	g.catchUp()
	got := map[string]int64{}
	for len(s.replays.jobs) > 0 {
		j := <-s.replays.jobs
		if !j.repair || j.upTo != toNewest {
			t.Fatalf("job %+v, want a repair up to the newest seq", j)
		}
		got[j.user] = j.cursor
	}
	if len(got) != 2 || got["u7"] != 5 || got["u280"] != 5 {
		t.Fatalf("repairs queued %v, want u7 and u280 from 5", got)
	}
	if *in.reads != 2 {
		t.Fatalf("%d newest-seq reads for %d users, want 2", *in.reads, users)
	}
}

// TestBindDuringCatchUpIsCaughtUp: a device whose CONNECT_INIT read the newest seq before
// a catch-up started, and that joins the gap tracker after the catch-up took its list,
// is caught up alone: what the catch-up repairs (deliveries a restarted broker dropped)
// may lie after the seq it read, and no later message would reveal the hole.
func TestBindDuringCatchUpIsCaughtUp(t *testing.T) {
	s, g := newTestTracker(time.Hour)
	s.gaps = g
	in := s.inbox.(seqInbox)
	in.newest["u"] = 7
	in.onRead = func() { g.catchUps.Add(1) } // a catch-up starts while the bind reads
	s.inbox = in
	l := &loop{srv: s, scheduled: true} // pushes queue without waking a gnet loop
	c := &conn{id: 1, user: "u", loop: l}
	s.sessions.add(c)
	s.replays.runBatch([]replayJob{{c: c, user: "u", cursor: 7, replay: true}})
	select {
	case j := <-s.replays.jobs:
		if !j.repair || j.cursor != 7 || j.upTo != toNewest {
			t.Fatalf("job %+v, want a catch-up of u from 7 to the newest seq", j)
		}
	default:
		t.Fatal("no catch-up queued for the device that bound during the catch-up")
	}
}
