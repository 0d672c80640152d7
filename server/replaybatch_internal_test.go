package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"imgate/message"
)

// downInbox is a store that cannot answer.
type downInbox struct{}

func (downInbox) Replay(context.Context, string, int64, int) ([]message.Entry, error) {
	return nil, errors.New("store down")
}

func (downInbox) LastSeqs(context.Context, []string) ([]int64, error) {
	return nil, errors.New("store down")
}

// TestFailedNewestSeqReadStillCountsItsRepair: a catch-up job whose newest-seq read fails
// is still counted as done by the gap tracker. A count left above zero would stop every
// later repair of the user's other devices on this node (check waits for it forever).
func TestFailedNewestSeqReadStillCountsItsRepair(t *testing.T) {
	s, g := newTestTracker(time.Hour)
	s.gaps, s.inbox = g, downInbox{}
	l := &loop{srv: s, scheduled: true} // pushes queue without waking a gnet loop
	for id := uint64(1); id <= 2; id++ {
		s.sessions.add(&conn{id: id, user: "u", loop: l})
	}
	g.start("u", 5)
	g.catchUp()
	if n := len(s.replays.jobs); n != 2 {
		t.Fatalf("%d catch-up jobs queued, want one per device", n)
	}
	s.replays.runBatch([]replayJob{<-s.replays.jobs})
	sh := g.shard("u")
	sh.mu.Lock()
	n := sh.users["u"].repairs
	sh.mu.Unlock()
	if n != 1 {
		t.Fatalf("repairs = %d after one failed catch-up of two, want 1", n)
	}
}
