package server_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
	"imgate/server"
)

// gatedPresence is a presence whose Sync waits until the test opens the gate, as a
// Redis write in flight does. It records the order of the calls it sees.
type gatedPresence struct {
	gate   chan struct{}
	synced atomic.Int32
	mu     sync.Mutex
	events []string
}

func (p *gatedPresence) log(e string) {
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
}

func (p *gatedPresence) Connected(u string)    { p.log("connected " + u) }
func (p *gatedPresence) Disconnected(u string) { p.log("disconnected " + u) }
func (p *gatedPresence) Sync(ctx context.Context) error {
	p.synced.Add(1)
	select {
	case <-p.gate:
		p.log("synced")
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// watchedInbox records when the node reads the store.
type watchedInbox struct {
	*memInbox
	p *gatedPresence
}

func (w watchedInbox) Replay(ctx context.Context, u string, after int64, limit int) ([]message.Entry, error) {
	w.p.log("replay " + u)
	return w.memInbox.Replay(ctx, u, after, limit)
}

func (w watchedInbox) LastSeqs(ctx context.Context, users []string) ([]int64, error) {
	w.p.log("lastseq " + strings.Join(users, ","))
	return w.memInbox.LastSeqs(ctx, users)
}

// TestReplayReadsTheStoreOnlyAfterPresenceIsVisible is the node's half of routed
// delivery's invariant: a message committed while a device binds is either routed to
// its node (presence was visible to the saver) or read by its replay (it was committed
// before presence became visible, so before the read). Were the store read before
// presence is visible, a message committed between the read and the write would be
// routed nowhere near the device and never replayed.
func TestReplayReadsTheStoreOnlyAfterPresenceIsVisible(t *testing.T) {
	p := &gatedPresence{gate: make(chan struct{})}
	inbox := newMemInbox()
	srv := startWired(t, server.Config{Addr: "127.0.0.1:0", EventLoops: 1},
		server.Deps{Inbox: watchedInbox{inbox, p}, Presence: p}, newMemOutbox(inbox), nil)

	c := dialWS(t, srv.Addr().String())
	c.sendJSON(map[string]any{"cursor": 0, "chatMsg": map[string]any{"senderId": "bob", "msgType": 0}})
	waitFor(t, 5*time.Second, "the replay worker waiting for presence", func() bool { return p.synced.Load() > 0 })
	// A message committed now — presence not yet visible — must be in the replay.
	inbox.save([]message.Record{{Msg: codec.ChatMsg{SenderID: "alice", ReceiverID: "bob", Msg: "in flight", MsgType: codec.Words, MsgID: 1, ChatTime: time.Now().UTC()}, Node: "elsewhere"}})
	close(p.gate)
	got := c.expectType(1)
	if got.str("msg") != "in flight" || got.seq() != 1 {
		t.Fatalf("replayed %v, want the message committed while presence was being written", got)
	}
	ack := c.expectType(11)
	if ack.seq() != 1 {
		t.Fatalf("init ACK seq %d, want 1", ack.seq())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	want := []string{"connected bob", "synced", "lastseq bob", "replay bob"}
	if len(p.events) < len(want) {
		t.Fatalf("events %v, want %v first", p.events, want)
	}
	for i, e := range want {
		if p.events[i] != e {
			t.Fatalf("events %v, want %v first", p.events, want)
		}
	}
}

// startWired starts a node on deps with out as its outbox, which reports to sink(srv)
// (the node itself when sink is nil); both stop when the test ends.
func startWired(t *testing.T, cfg server.Config, deps server.Deps, out *memOutbox, sink func(*server.Server) message.Sink) *server.Server {
	t.Helper()
	deps.Outbox = out
	srv, err := server.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if sink == nil {
		out.start(srv)
	} else {
		out.start(sink(srv))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		out.stop()
	})
	return srv
}
