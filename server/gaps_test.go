package server_test

import (
	"testing"
	"time"

	"imgate/message"
	"imgate/server"
)

// lossySink passes persisted messages on to the node, except those whose clientMsgId is
// lost: the broker losing a fan-out delivery between the saver and a node.
type lossySink struct {
	srv  *server.Server
	lost string
}

func (l *lossySink) Saved(batch []message.Saved) {
	kept := batch[:0:0]
	for _, s := range batch {
		if s.Msg.ClientMsgID != l.lost {
			kept = append(kept, s)
		}
	}
	l.srv.Saved(kept)
}

func (l *lossySink) Failed(r []message.Record, err error) { l.srv.Failed(r, err) }

func TestGapRepairReplaysALostDelivery(t *testing.T) {
	store := newMemInbox()
	sink := &lossySink{lost: "lost-1"}
	srv := startWired(t, server.Config{Addr: "127.0.0.1:0", EventLoops: 2, RepairGaps: true, GapDelay: 100 * time.Millisecond},
		server.Deps{Inbox: store}, newMemOutbox(store), func(srv *server.Server) message.Sink { sink.srv = srv; return sink })
	addr := srv.Addr().String()
	a, _ := login(t, addr, "gap-a", -1)
	b, _ := login(t, addr, "gap-b", -1)
	for _, cid := range []string{"ok-1", "lost-1", "ok-2"} {
		a.send("gap-a", "gap-b", cid, cid)
	}
	a.expectType(11) // ok-1; lost-1's ACK went with its delivery, ok-2 follows
	a.expectType(11)
	got := map[int64]string{}
	var order []int64
	for len(got) < 3 {
		e := b.expectType(1)
		got[e.seq()] = e.str("msg")
		order = append(order, e.seq())
	}
	if got[1] != "ok-1" || got[2] != "lost-1" || got[3] != "ok-2" {
		t.Fatalf("bob's inbox as delivered: %v", got)
	}
	// ok-2 (seq 3) opened the gap: it is held until the repair wrote seq 2 (PROTOCOL §5).
	if len(order) != 3 || order[0] != 1 || order[1] != 2 || order[2] != 3 {
		t.Fatalf("bob's connection received seqs %v, want 1 2 3", order)
	}
	// The repair is counted after its frames are queued, so the count may trail them.
	waitFor(t, 5*time.Second, "the repair to be counted", func() bool { return srv.Stats().Repaired > 0 })
}
