package server_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
	"imgate/server"
)

// gatedInbox records the users of every LastSeqs call; the first call waits for gate.
type gatedInbox struct {
	*memInbox
	gate chan struct{}
	fail error // when set, LastSeqs fails with it

	mu    sync.Mutex
	calls [][]string
}

func (g *gatedInbox) LastSeqs(ctx context.Context, users []string) ([]int64, error) {
	g.mu.Lock()
	g.calls = append(g.calls, append([]string(nil), users...))
	first := len(g.calls) == 1
	g.mu.Unlock()
	if first {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if g.fail != nil {
		return nil, g.fail
	}
	return g.memInbox.LastSeqs(ctx, users)
}

func (g *gatedInbox) batches() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var n []int
	for _, c := range g.calls {
		n = append(n, len(c))
	}
	return n
}

// TestConnectInitsShareOneNewestSeqRead: CONNECT_INITs that queue while the replay worker
// is busy are served by one newest-seq read (issue 9: a reconnect storm asks the store
// once per batch, not once per device), and each still gets its own replay and ACK.
func TestConnectInitsShareOneNewestSeqRead(t *testing.T) {
	store := newMemInbox()
	// u3 has two messages waiting, u5 one.
	for i, to := range []string{"u3", "u3", "u5"} {
		store.save([]message.Record{{Msg: codec.ChatMsg{SenderID: "sender", ReceiverID: to, Msg: fmt.Sprint("m", i), MsgType: codec.Words,
			MsgID: int64(100 + i), ChatTime: time.Now().UTC().Truncate(time.Millisecond)}, SenderConn: 1, Node: "x"}})
	}
	g := &gatedInbox{memInbox: store, gate: make(chan struct{})}
	n := startWiredNode(t, server.Config{ReplayWorkers: 1}, g)

	// The first CONNECT_INIT holds the only worker in its newest-seq read.
	first := dialWS(t, n.Addr().String())
	first.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": "u0", "msgType": 0}, "cursor": 0})
	waitFor(t, 5*time.Second, "the first newest-seq read", func() bool { return len(g.batches()) == 1 })

	const queued = 10
	clients := make([]*rawClient, queued)
	for i := range clients {
		clients[i] = dialWS(t, n.Addr().String())
		clients[i].sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": fmt.Sprintf("u%d", i+1), "msgType": 0}, "cursor": 0})
	}
	waitFor(t, 5*time.Second, "every CONNECT_INIT bound", func() bool { return n.Stats().Binds == queued+1 })
	close(g.gate)

	if e := first.readEnvelope(5 * time.Second); e.msgType() != 11 || e.seq() != 0 {
		t.Fatalf("u0: want its init ACK with seq 0, got %+v", e.ChatMsg)
	}
	for i, c := range clients {
		user := fmt.Sprintf("u%d", i+1)
		want := map[string]int64{"u3": 2, "u5": 1}[user]
		for s := int64(1); s <= want; s++ {
			if e := c.readEnvelope(5 * time.Second); e.msgType() != 1 || e.seq() != s {
				t.Fatalf("%s: want replayed seq %d, got %+v", user, s, e.ChatMsg)
			}
		}
		if e := c.readEnvelope(5 * time.Second); e.msgType() != 11 || e.seq() != want {
			t.Fatalf("%s: want its init ACK with seq %d, got %+v", user, want, e.ChatMsg)
		}
	}
	// One read for u0, then the ten queued ones together (a bind that reached the queue
	// only after the worker took the others may make a third read).
	b := g.batches()
	if len(b) > 3 || b[0] != 1 || sum(b) != queued+1 || max(b[1], b[len(b)-1]) < queued-1 {
		t.Errorf("newest-seq reads of %v users, want [1 %d] (ten CONNECT_INITs queued behind the first)", b, queued)
	}
	if got := n.Stats().NewestReads; got != int64(len(b)) {
		t.Errorf("Stats.NewestReads = %d, want %d", got, len(b))
	}
}

// TestNewestSeqReadFailureClosesItsBatch: when the store cannot answer, every
// CONNECT_INIT of the batch, which shared the one failed read, is closed with 1013 (try
// again later).
func TestNewestSeqReadFailureClosesItsBatch(t *testing.T) {
	g := &gatedInbox{memInbox: newMemInbox(), gate: make(chan struct{}), fail: errors.New("store down")}
	n := startWiredNode(t, server.Config{ReplayWorkers: 1}, g)
	first := dialWS(t, n.Addr().String())
	first.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": "a", "msgType": 0}, "cursor": 0})
	waitFor(t, 5*time.Second, "the first newest-seq read", func() bool { return len(g.batches()) == 1 })
	second := dialWS(t, n.Addr().String())
	second.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": "b", "msgType": 0}})
	third := dialWS(t, n.Addr().String())
	third.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": "c", "msgType": 0}, "cursor": 3})
	waitFor(t, 5*time.Second, "all three bound", func() bool { return n.Stats().Binds == 3 })
	close(g.gate)
	for _, c := range []*rawClient{first, second, third} {
		c.expectClose(1013)
	}
	// Binds counts a bind just before its job is queued, on the same loop callback; the
	// worker takes the queue only after the failed read returned, long after that.
	if b := g.batches(); len(b) != 2 || b[1] != 2 {
		t.Errorf("newest-seq reads of %v users, want [1 2]", b)
	}
}

func sum(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

// startWiredNode starts a node on 127.0.0.1:0 that reads inbox and persists into it
// through a memOutbox.
func startWiredNode(t *testing.T, cfg server.Config, inbox *gatedInbox) *server.Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.EventLoops = 2
	return startWired(t, cfg, server.Deps{Inbox: inbox}, newMemOutbox(inbox.memInbox), nil)
}
