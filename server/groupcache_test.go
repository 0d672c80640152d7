package server_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"imgate/message"
	"imgate/server"
)

// groupStore is the membership double of these tests: the node's GroupSource and, as
// groupOutbox, the saver that checks membership again in every save.
type groupStore struct {
	mu        sync.Mutex
	members   map[string][]string
	submitted []message.Record
	sink      message.Sink
}

func (g *groupStore) Group(_ context.Context, id string) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.members[id]
	if !ok {
		return nil, fmt.Errorf("group %q: %w", id, message.ErrUnknownGroup)
	}
	return slices.Clone(m), nil
}

func (g *groupStore) set(id string, members ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members[id] = members
}

func (g *groupStore) records() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.submitted)
}

// groupOutbox persists on its own goroutine like a saver: a non-member's message comes
// back Forbidden, a member's with the sender's seq.
type groupOutbox struct{ g *groupStore }

func (o groupOutbox) Submit(r message.Record) error {
	o.g.mu.Lock()
	o.g.submitted = append(o.g.submitted, r)
	member := slices.Contains(o.g.members[r.Msg.GroupID], r.Msg.SenderID)
	seq := int64(len(o.g.submitted))
	sink := o.g.sink
	o.g.mu.Unlock()
	sv := message.Saved{Record: r, Forbidden: !member}
	if member {
		sv.SenderSeq = seq
		sv.Members = []message.MemberSeq{{User: r.Msg.SenderID, Seq: seq}}
	}
	go sink.Saved([]message.Saved{sv})
	return nil
}

func (c *rawClient) sendGroup(from, group, cid string) {
	c.sendJSON(map[string]any{"chatMsg": map[string]any{
		"senderId": from, "groupId": group, "msg": "hi", "msgType": 1, "clientMsgId": cid,
	}})
}

// The node refuses a non-member's group message from its cache, without the trip to
// the saver; a change reaches it only through InvalidateGroups (what the server API
// calls before it answers), and then applies to the next message.
func TestGroupCacheRefusesNonMembersOnTheNode(t *testing.T) {
	g := &groupStore{members: map[string][]string{"g1": {"alice"}}}
	srv, err := server.New(server.Config{Addr: "127.0.0.1:0", EventLoops: 2}, server.Deps{Outbox: groupOutbox{g}, Groups: g})
	if err != nil {
		t.Fatal(err)
	}
	g.sink = srv
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	addr := srv.Addr().String()
	bob, _ := login(t, addr, "bob", -1)

	expect := func(cid, code string) {
		t.Helper()
		e := bob.readEnvelope(5 * time.Second)
		got := e.str("clientMsgId") + " ACK"
		if e.Error != nil {
			got = e.str("clientMsgId") + " " + e.Error.Code
		}
		if got != cid+" "+code {
			t.Fatalf("answer %q, want %q", got, cid+" "+code)
		}
	}
	checks := func(answer string) int64 { return srv.Stats().GroupChecks[answer] }

	// Not cached yet: the saver refuses, and the node loads the group meanwhile.
	bob.sendGroup("bob", "g1", "c1")
	expect("c1", "forbidden")
	if checks("miss") != 1 || g.records() != 1 {
		t.Fatalf("first message: %v checks, %d records at the saver", srv.Stats().GroupChecks, g.records())
	}
	waitFor(t, 5*time.Second, "the group in the cache", func() bool {
		bob.sendGroup("bob", "g1", "c2")
		expect("c2", "forbidden")
		return checks("non_member") > 0
	})
	before := g.records()

	// Added in the store only: the node still refuses from its cache...
	g.set("g1", "alice", "bob")
	bob.sendGroup("bob", "g1", "c3")
	expect("c3", "forbidden")
	if g.records() != before {
		t.Fatal("a cached non-member's message went to the saver")
	}
	// ...until the change is announced: then the next message goes through.
	srv.InvalidateGroups([]string{"g1"})
	bob.sendGroup("bob", "g1", "c4")
	expect("c4", "ACK")

	// Removed and announced: the next message is refused (by the saver, then the cache).
	g.set("g1", "alice")
	srv.InvalidateGroups([]string{"g1"})
	bob.sendGroup("bob", "g1", "c5")
	expect("c5", "forbidden")

	// A group that does not exist is cached as one without members.
	bob.sendGroup("bob", "nope", "c6")
	expect("c6", "forbidden")
	waitFor(t, 5*time.Second, "the unknown group in the cache", func() bool {
		n := g.records()
		bob.sendGroup("bob", "nope", "c7")
		expect("c7", "forbidden")
		return g.records() == n
	})
}
