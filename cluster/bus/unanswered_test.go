package bus

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"imgate/cluster/bus/wire"
	"imgate/cluster/clustertest"
	"imgate/cluster/rabbit"
	"imgate/message"
)

func waitingRec(id int64) message.Record {
	r := busRecord(id, "a", "b", "n")
	r.Msg.ClientMsgID = "c" + strconv.FormatInt(id, 10)
	return r
}

// waitingKey is the key of waitingRec(id).
func waitingKey(id int64) waitKey {
	r := waitingRec(id)
	return keyOf(&r.Msg)
}

// ids returns the msgIds of recs.
func ids(recs []message.Record) []int64 {
	out := make([]int64, len(recs))
	for i := range recs {
		out[i] = recs[i].Msg.MsgID
	}
	return out
}

// The tracker keeps records until answered, publishes again only the confirmed ones,
// in submit order, expires the oldest, and refuses records over its bound.
func TestUnansweredKeepsRecordsUntilAnswered(t *testing.T) {
	u := newUnanswered(4)
	t0 := time.Unix(1000, 0)
	for i := range int64(4) {
		if err := u.add(waitingRec(i+1), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.add(waitingRec(5), t0); !errors.Is(err, rabbit.ErrFull) {
		t.Fatalf("fifth record: %v, want ErrFull", err)
	}
	if got := u.takeConfirmed(); len(got) != 0 {
		t.Fatalf("published again before any confirm: %d", len(got))
	}
	u.confirmed([]message.Record{waitingRec(3), waitingRec(1), waitingRec(4)})
	u.answered([]waitKey{waitingKey(4)})
	got := ids(u.takeConfirmed())
	if !slices.Equal(got, []int64{1, 3}) {
		t.Fatalf("published again %v, want [1 3] (confirmed, unanswered, in submit order)", got)
	}
	if again := u.takeConfirmed(); len(again) != 0 {
		t.Fatalf("published again twice: %v", ids(again))
	}
	late := ids(u.expire(t0.Add(61500*time.Millisecond), time.Minute))
	if !slices.Equal(late, []int64{1, 2}) {
		t.Fatalf("expired %v, want [1 2] (older than a minute)", late)
	}
	if n := u.len(); n != 1 {
		t.Fatalf("%d records wait, want 1", n)
	}
}

// A resend of a record (same sender and clientMsgId, a new msgId from the node) replaces
// it, and the saver's answer to either — a duplicate carries the first one's msgId —
// answers both; a record without a clientMsgId is answered by its msgId. A failed record
// is forgotten, but not the resend that replaced it.
func TestUnansweredMatchesAResendsAnswer(t *testing.T) {
	u := newUnanswered(10)
	first := waitingRec(1)
	resend := waitingRec(2)
	resend.Msg.ClientMsgID = first.Msg.ClientMsgID
	bare := waitingRec(3)
	bare.Msg.ClientMsgID = ""
	for _, r := range []message.Record{first, resend, bare} {
		if err := u.add(r, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if n := u.len(); n != 2 {
		t.Fatalf("%d records wait, want 2 (the resend replaced the first)", n)
	}
	u.forget([]message.Record{first}) // the first's batch failed: the resend still waits
	if n := u.len(); n != 2 {
		t.Fatalf("%d records wait after the first failed, want 2", n)
	}
	dup := first.Msg // the saver's answer to the resend: the first msgId, the same clientMsgId
	u.answered([]waitKey{keyOf(&dup), keyOf(&bare.Msg)})
	if n := u.len(); n != 0 {
		t.Fatalf("%d records wait after both answers, want 0", n)
	}
}

// Answers that come out of submit order, and a steady stream with some records always
// waiting, do not let the submit-order list grow beyond about twice the records waiting,
// even behind one record that is never answered.
func TestUnansweredOrderStaysBounded(t *testing.T) {
	check := func(u *unanswered, what string) {
		t.Helper()
		u.mu.Lock()
		n, c := len(u.order), cap(u.order)
		u.mu.Unlock()
		if max := 2*u.len() + 1024 + 1; n > max || c > 4*max {
			t.Fatalf("%s: order holds %d entries (capacity %d) for %d waiting records", what, n, c, u.len())
		}
	}
	now := time.Now()
	steady := newUnanswered(1 << 20)
	for i := int64(1); i < 200_000; i++ {
		if err := steady.add(waitingRec(i), now); err != nil {
			t.Fatal(err)
		}
		if i > 10 {
			steady.answered([]waitKey{waitingKey(i - 10)}) // ten always wait, answered in order
		}
	}
	check(steady, "in order")
	stuck := newUnanswered(1 << 20)
	if err := stuck.add(waitingRec(1), now); err != nil { // never answered
		t.Fatal(err)
	}
	for i := int64(2); i < 200_000; i++ {
		if err := stuck.add(waitingRec(i), now); err != nil {
			t.Fatal(err)
		}
		stuck.answered([]waitKey{waitingKey(i)})
	}
	check(stuck, "behind one that is never answered")
}

// proxiedNode returns a test config (cfg), the same reaching the broker through a proxy
// the test cuts and heals (ncfg, for the node), the queue of node number port (deleted
// at the end) and the proxy.
func proxiedNode(t *testing.T, port int) (cfg, ncfg Config, q string, proxy *clustertest.Proxy) {
	t.Helper()
	cfg, _ = busTestConfig(t)
	q = cfg.NodeQueue("127.0.0.1", port)
	t.Cleanup(func() { busDeleteQueues(t, q) })
	proxy, url := newBusProxy(t)
	ncfg = cfg
	ncfg.URL = url
	return cfg, ncfg, q, proxy
}

// TestBusPublishesAgainWhatTheBrokerDropped: the save hop's messages are transient, so
// a broker restart drops the records its save queue held. The node keeps each record
// until its result comes back and publishes the unanswered ones again on its next
// connection: every sender is still answered. (The restart is a cut connection and a
// purged save queue: what a restarted broker leaves of transient messages.)
func TestBusPublishesAgainWhatTheBrokerDropped(t *testing.T) {
	cfg, ncfg, q, proxy := proxiedNode(t, 7)
	sink := newBusSink()
	node := busNode(t, ncfg, q, sink)

	const n = 5
	for i := range n {
		if err := node.Submit(busRecord(int64(7000+i), "alice", "bob", q)); err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	busWaitFor(t, 10*time.Second, "every batch confirmed", func() bool {
		node.waiting.mu.Lock()
		defer node.waiting.mu.Unlock()
		for _, w := range node.waiting.recs {
			if !w.confirmed {
				return false
			}
		}
		return len(node.waiting.recs) == n
	})
	ch, err := busAdminConn(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	d, ok, err := ch.Get(cfg.SaveQueue, false)
	if err != nil || !ok {
		t.Fatalf("save queue: %v %v", ok, err)
	}
	if d.DeliveryMode != amqp.Transient {
		t.Errorf("save hop delivery mode %d, want transient (%d)", d.DeliveryMode, amqp.Transient)
	}

	proxy.Cut()
	if _, err := ch.QueuePurge(cfg.SaveQueue, false); err != nil {
		t.Fatal(err)
	}
	if err := d.Nack(false, false); err != nil { // the fetched one is dropped too
		t.Fatal(err)
	}
	busWaitFor(t, 10*time.Second, "save queue empty", func() bool { return busQueueLen(t, cfg.SaveQueue) == 0 })
	proxy.Heal()
	busReady(t, node.Ready)

	store := newBusStore()
	busSaver(t, cfg, store.handle)
	busWaitFor(t, 10*time.Second, "every record answered after the broker dropped them", func() bool {
		return sink.distinct() == n && node.waiting.len() == 0
	})
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.failed) > 0 {
		t.Fatalf("records failed: %v", sink.failed)
	}
	select {
	case <-node.Reconnected():
	default:
		t.Error("Reconnected did not signal the second connection")
	}
}

// TestBusFailsRecordsWithoutAnswer: with no saver, a record is failed once
// AnswerTimeout passes (its sender gets ERROR unavailable and resends) instead of
// waiting for ever.
func TestBusFailsRecordsWithoutAnswer(t *testing.T) {
	cfg, _ := busTestConfig(t)
	q := cfg.NodeQueue("127.0.0.1", 8)
	t.Cleanup(func() { busDeleteQueues(t, q) })
	cfg.AnswerTimeout = 500 * time.Millisecond
	sink := newBusSink()
	node := busNode(t, cfg, q, sink)
	for i := range 3 {
		if err := node.Submit(busRecord(int64(8000+i), "alice", "bob", q)); err != nil {
			t.Fatal(err)
		}
	}
	busWaitFor(t, 10*time.Second, "records failed after the answer timeout", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.failed) == 3
	})
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, err := range sink.failed {
		if !errors.Is(err, rabbit.ErrUnavailable) {
			t.Fatalf("failed with %v, want ErrUnavailable", err)
		}
	}
	if node.waiting.len() != 0 {
		t.Fatalf("%d records still wait", node.waiting.len())
	}
}

// gatedSink holds the node queue's consumer in Saved until release is closed.
type gatedSink struct {
	*busSink
	release chan struct{}
}

func (g gatedSink) Saved(batch []message.Saved) {
	<-g.release
	g.busSink.Saved(batch)
}

// TestBusReconnectedWaitsForTheQueuedBacklog: after a reconnect the node catches its
// users up from the store only once the messages its queue held at the reconnect are
// consumed. After a connection blip they are the deliveries the node missed, not lost:
// catching up before them would repair every user with a message still queued (and
// overflow the replay queue of a busy node).
func TestBusReconnectedWaitsForTheQueuedBacklog(t *testing.T) {
	_, ncfg, q, proxy := proxiedNode(t, 9)
	sink := gatedSink{busSink: newBusSink(), release: make(chan struct{})}
	node, err := NewNodeBus(ncfg, q, q)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close() })
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(sink.release) }) }
	t.Cleanup(release) // before Close: a failed test must not leave the consumer held
	node.Start(sink, sink)
	busReady(t, node.Ready)

	proxy.Cut()
	busWaitFor(t, 10*time.Second, "the node sees the cut", func() bool { return node.State() != nil })
	ch, err := busAdminConn(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	for i := range 3 {
		body := wire.Encode(wire.Saved, []message.Saved{{Record: busRecord(int64(9000+i), "alice", "bob", "elsewhere"), ReceiverSeq: int64(i + 1), SenderSeq: int64(i + 1)}})
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	busWaitFor(t, 10*time.Second, "the backlog queued", func() bool { return busQueueLen(t, q) == 3 })
	proxy.Heal()
	busReady(t, node.Ready)
	busWaitFor(t, 10*time.Second, "the consumer holds the backlog", func() bool { return busQueueLen(t, q) == 0 })
	select {
	case <-node.Reconnected():
		t.Fatal("Reconnected signalled before the queued backlog was consumed")
	default:
	}
	release()
	select {
	case <-node.Reconnected():
	case <-time.After(10 * time.Second):
		t.Fatal("Reconnected not signalled after the backlog was consumed")
	}
	if n := sink.distinct(); n != 3 {
		t.Fatalf("%d of 3 queued messages delivered", n)
	}
}
