package bus

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"imgate/message"
)

// offlineLog records what an OfflineHook heard.
type offlineLog struct {
	mu  sync.Mutex
	got []message.Offline
}

func (o *offlineLog) Enqueue(batch []message.Offline) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, batch...)
}

func (o *offlineLog) entries() []message.Offline {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]message.Offline(nil), o.got...)
}

// fakeRouter is presence as a map: user → the node ids holding a device of it.
type fakeRouter struct {
	mu     sync.Mutex
	routes map[string][]string
	err    error
}

func (f *fakeRouter) Lookup(_ context.Context, users []string) (map[string][]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := map[string][]string{}
	for _, u := range users {
		if r, ok := f.routes[u]; ok {
			out[u] = r
		}
	}
	return out, nil
}

func (f *fakeRouter) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (k *busSink) has(id int64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ids[id] > 0
}

// TestBusRoutedDeliveryReachesOnlyTheNodesNamed: with a router, a persisted record goes
// to the node that accepted it (the ACK) and to the nodes presence names for its sender
// and receiver — one AMQP message per node and batch — and to no other node; when
// presence cannot be read, the batch goes to every node. The offline hook hears only of
// the receivers presence shows nowhere (frank; never a sender such as alice or dave),
// and of nothing while presence cannot be read.
func TestBusRoutedDeliveryReachesOnlyTheNodesNamed(t *testing.T) {
	cfg, _ := busTestConfig(t)
	qa, qb, qc := cfg.NodeQueue("127.0.0.1", 31), cfg.NodeQueue("127.0.0.1", 32), cfg.NodeQueue("127.0.0.1", 33)
	t.Cleanup(func() { busDeleteQueues(t, qa, qb, qc) })
	sa, sb, sc := newBusSink(), newBusSink(), newBusSink()
	a := busNode(t, cfg, qa, sa) // node ids are the queue names here (busNode)
	busNode(t, cfg, qb, sb)
	busNode(t, cfg, qc, sc)

	router := &fakeRouter{routes: map[string][]string{"bob": {qb}, "carol": {qc}}}
	store := newBusStore()
	hook := &offlineLog{}
	saver, err := NewSaveConsumer(cfg, store.handle, router, hook)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = saver.Close() })
	busReady(t, saver.Ready)

	const n = 200
	for i := range n {
		if err := a.Submit(busRecord(int64(5000+i), "alice", "bob", qa)); err != nil {
			t.Fatal(err)
		}
	}
	// Then one record for carol, on C: the barrier after which C must hold only it.
	if err := a.Submit(busRecord(6000, "dave", "carol", qa)); err != nil {
		t.Fatal(err)
	}
	busWaitFor(t, 10*time.Second, "A (the ACKs) and B (bob's node) receive alice's records", func() bool {
		return sa.distinct() == n+1 && sb.distinct() == n
	})
	busWaitFor(t, 10*time.Second, "C receives carol's record", func() bool { return sc.has(6000) })
	if got := sc.distinct(); got != 1 {
		t.Fatalf("node C received %d records, want only carol's", got)
	}
	if sb.has(6000) {
		t.Fatal("node B received carol's record")
	}
	st := saver.Stats()
	if st.Records != n+1 || st.NodeRecords != 2*(n+1) || st.Fanouts != 0 {
		t.Fatalf("stats %+v: want %d records, each to 2 nodes, no fanout", st, n+1)
	}
	if st.Messages >= st.Records {
		t.Errorf("%d AMQP messages for %d records: want batches", st.Messages, st.Records)
	}

	if got := hook.entries(); len(got) != 0 {
		t.Fatalf("the offline hook heard of %+v; every receiver had a device", got)
	}
	// frank has no device anywhere: his message is still routed to A (the ACK), and
	// the hook hears of it with frank's seq.
	if err := a.Submit(busRecord(6500, "alice", "frank", qa)); err != nil {
		t.Fatal(err)
	}
	busWaitFor(t, 10*time.Second, "the offline hook hears of frank's message", func() bool { return len(hook.entries()) > 0 })
	if got := hook.entries(); len(got) != 1 || got[0].UserID != "frank" || got[0].Seq != 1 || got[0].Msg.MsgID != 6500 {
		t.Fatalf("offline hook heard %+v, want frank's message 6500 at seq 1", got)
	}

	// Presence cannot be read: the batch goes to every node.
	router.fail(errors.New("redis down"))
	if err := a.Submit(busRecord(7000, "alice", "erin", qa)); err != nil {
		t.Fatal(err)
	}
	busWaitFor(t, 10*time.Second, "every node receives the record presence could not route", func() bool {
		return sa.has(7000) && sb.has(7000) && sc.has(7000)
	})
	if st := saver.Stats(); st.Fanouts == 0 || st.OfflineUnsure != 1 {
		t.Fatalf("stats %+v: want a fanout and 1 record the offline hook could not judge", st)
	}
	if got := hook.entries(); len(got) != 1 {
		t.Fatalf("offline hook heard %+v while presence was unreadable", got)
	}
}
