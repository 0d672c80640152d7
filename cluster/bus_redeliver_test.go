package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"imgate/saver"
)

// TestBusRedeliveredRecordIsPushedAgain: a record the store already holds under its own
// msgId (committed by a saver that died before its fan-out) comes back as not duplicate
// and reaches the nodes; a client's resend (same clientMsgId, another msgId) stays a
// duplicate that nobody receives again.
func TestBusRedeliveredRecordIsPushedAgain(t *testing.T) {
	cfg, _ := busTestConfig(t)
	q := cfg.NodeQueue("127.0.0.1", 3)
	t.Cleanup(func() { busDeleteQueues(t, q) })

	var mu sync.Mutex
	got := map[int64]bool{} // msgId → Duplicate as delivered
	node, err := NewNodeBus(cfg, q, func(batch []saver.Saved) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range batch {
			got[s.Msg.MsgID] = s.Duplicate
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close() })
	busReady(t, node.Ready)

	store := newBusStore()
	committed := busRecord(5000, "alice", "bob", "a")
	if _, err := store.handle(context.Background(), []saver.Record{committed}); err != nil {
		t.Fatal(err)
	}
	first := busRecord(4000, "alice", "bob", "a")
	resend := busRecord(5001, "alice", "bob", "a")
	resend.Msg.ClientMsgID = first.Msg.ClientMsgID
	busSaver(t, cfg, func(ctx context.Context, recs []saver.Record) ([]saver.Saved, error) {
		out, err := store.handle(ctx, recs)
		for i, r := range recs {
			if err == nil && r.Msg.MsgID == resend.Msg.MsgID {
				// What a store answers to a client's resend: the first message.
				out[i] = saver.Saved{Record: first, ReceiverSeq: 1, SenderSeq: 1, Duplicate: true}
			}
		}
		return out, err
	})
	for _, r := range []saver.Record{committed, resend} {
		if err := node.Submit(r); err != nil {
			t.Fatal(err)
		}
	}
	busWaitFor(t, 10*time.Second, "both delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if dup, ok := got[committed.Msg.MsgID]; !ok || dup {
		t.Fatalf("the redelivered record came back with duplicate=%v (present %v): no device would get it", dup, ok)
	}
	if dup, ok := got[first.Msg.MsgID]; !ok || !dup {
		t.Fatalf("a client's resend must stay a duplicate (present %v, duplicate %v)", ok, dup)
	}
}
