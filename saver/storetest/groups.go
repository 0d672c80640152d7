package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"imgate/message"
)

// grec builds a group message from sender to group with a fresh msgId.
func grec(sender, group, text, clientMsgID string) message.Record {
	r := rec(sender, "x", text, clientMsgID)
	r.Msg.ReceiverID, r.Msg.GroupID = "", group
	return r
}

func (f *fixture) putGroup(t *testing.T, group string, members ...string) []string {
	t.Helper()
	out, err := f.s.PutGroup(ctx(t), group, members)
	if err != nil {
		t.Fatalf("PutGroup(%q, %v): %v", group, members, err)
	}
	return out
}

func testGroupMembership(t *testing.T, f *fixture) {
	if _, err := f.s.Group(ctx(t), "team"); !errors.Is(err, message.ErrUnknownGroup) {
		t.Fatalf("Group of an unknown group: %v, want ErrUnknownGroup", err)
	}
	if got := f.putGroup(t, "team", "carol", "alice", "bob", "alice"); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("PutGroup returned %v, want sorted distinct members", got)
	}
	if got, err := f.s.Group(ctx(t), "team"); err != nil || !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("Group = %v, %v", got, err)
	}
	got, err := f.s.UpdateGroup(ctx(t), "team", []string{"dave", "erin"}, []string{"bob", "nobody"}, 0)
	if err != nil || !slices.Equal(got, []string{"alice", "carol", "dave", "erin"}) {
		t.Fatalf("UpdateGroup = %v, %v", got, err)
	}
	if _, err := f.s.UpdateGroup(ctx(t), "team", []string{"f", "g"}, nil, 5); !errors.Is(err, message.ErrGroupFull) {
		t.Fatalf("UpdateGroup over the limit: %v, want ErrGroupFull", err)
	}
	if got, _ := f.s.Group(ctx(t), "team"); !slices.Equal(got, []string{"alice", "carol", "dave", "erin"}) {
		t.Fatalf("a refused change changed the group: %v", got)
	}
	if got := f.putGroup(t, "team", "zed"); !slices.Equal(got, []string{"zed"}) {
		t.Fatalf("PutGroup did not replace the members: %v", got)
	}
	if got := f.putGroup(t, "empty"); len(got) != 0 {
		t.Fatalf("empty group: %v", got)
	}
	if got, err := f.s.Group(ctx(t), "empty"); err != nil || len(got) != 0 {
		t.Fatalf("Group(empty) = %v, %v", got, err)
	}
	if _, err := f.s.UpdateGroup(ctx(t), "ghost", []string{"a"}, nil, 0); !errors.Is(err, message.ErrUnknownGroup) {
		t.Fatalf("UpdateGroup of an unknown group: %v", err)
	}
	if _, err := f.s.PutGroup(ctx(t), "bad", []string{""}); !errors.Is(err, message.ErrInvalid) {
		t.Fatalf("PutGroup with an empty member id: %v, want ErrInvalid", err)
	}
	if err := f.s.DeleteGroup(ctx(t), "team"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	if err := f.s.DeleteGroup(ctx(t), "team"); !errors.Is(err, message.ErrUnknownGroup) {
		t.Fatalf("DeleteGroup twice: %v", err)
	}
	if _, err := f.s.Group(ctx(t), "team"); !errors.Is(err, message.ErrUnknownGroup) {
		t.Fatalf("Group after delete: %v", err)
	}
}

func testGroupMessages(t *testing.T, f *fixture) {
	f.putGroup(t, "team", "alice", "bob", "carol")
	// bob already has a one-to-one message, so his group seq differs from the others'.
	f.save(t, rec("dave", "bob", "hi bob", ""))
	out := f.save(t, grec("alice", "team", "hello team", "g-1"), grec("bob", "team", "hi all", ""))
	want := [][]message.MemberSeq{
		{{User: "alice", Seq: 1}, {User: "bob", Seq: 2}, {User: "carol", Seq: 1}},
		{{User: "alice", Seq: 2}, {User: "bob", Seq: 3}, {User: "carol", Seq: 2}},
	}
	for i, s := range out {
		if s.Forbidden || s.Duplicate || !slices.Equal(s.Members, want[i]) {
			t.Fatalf("group message %d: Forbidden %v Duplicate %v Members %v, want %v", i, s.Forbidden, s.Duplicate, s.Members, want[i])
		}
		if s.Msg.GroupID != "team" || s.Msg.ReceiverID != "" {
			t.Fatalf("group message %d: groupId %q receiverId %q", i, s.Msg.GroupID, s.Msg.ReceiverID)
		}
	}
	if out[0].SenderSeq != 1 || out[1].SenderSeq != 3 {
		t.Fatalf("SenderSeq %d, %d: want the sender's member seq 1, 3", out[0].SenderSeq, out[1].SenderSeq)
	}
	// Every member's inbox has both, in the same order, with groupId set.
	for _, u := range []string{"alice", "bob", "carol"} {
		var texts []string
		for _, e := range f.replay(t, u, 0, 100) {
			if e.Msg.GroupID == "team" {
				texts = append(texts, e.Msg.Msg)
				if e.Msg.ReceiverID != "" {
					t.Errorf("%s: replayed group message has receiverId %q", u, e.Msg.ReceiverID)
				}
			}
		}
		if !slices.Equal(texts, []string{"hello team", "hi all"}) {
			t.Errorf("%s replays group messages %v", u, texts)
		}
	}
	if n := f.lastSeq(t, "bob"); n != 3 {
		t.Errorf("LastSeq(bob) = %d, want 3", n)
	}
	// A resend by clientMsgId is acknowledged with the first msgId and delivered to nobody.
	again := f.save(t, grec("alice", "team", "hello team", "g-1"))[0]
	if !again.Duplicate || again.Msg.MsgID != out[0].Msg.MsgID || again.SenderSeq != 1 {
		t.Fatalf("resend: Duplicate %v msgId %d (first %d) SenderSeq %d", again.Duplicate, again.Msg.MsgID, out[0].Msg.MsgID, again.SenderSeq)
	}
	if n := f.lastSeq(t, "carol"); n != 2 {
		t.Errorf("a resend advanced carol's inbox to %d", n)
	}
}

func testGroupForbidden(t *testing.T, f *fixture) {
	f.putGroup(t, "team", "alice", "bob")
	out := f.save(t, grec("mallory", "team", "let me in", "m-1"), grec("alice", "ghost", "anyone?", ""), grec("alice", "team", "ok", ""))
	if !out[0].Forbidden || !out[1].Forbidden || out[2].Forbidden {
		t.Fatalf("Forbidden = %v %v %v, want true true false", out[0].Forbidden, out[1].Forbidden, out[2].Forbidden)
	}
	if len(out[0].Members) != 0 || out[0].SenderSeq != 0 {
		t.Fatalf("a forbidden message got seqs: %+v", out[0])
	}
	for _, u := range []string{"mallory", "bob"} {
		for _, e := range f.replay(t, u, 0, 100) {
			if e.Msg.Msg != "ok" {
				t.Errorf("%s's inbox holds %q", u, e.Msg.Msg)
			}
		}
	}
	// Membership changes apply to the next message: mallory joins, then may send.
	if _, err := f.s.UpdateGroup(ctx(t), "team", []string{"mallory"}, []string{"bob"}, 0); err != nil {
		t.Fatal(err)
	}
	next := f.save(t, grec("mallory", "team", "let me in", "m-1"))[0]
	if next.Forbidden || next.Duplicate {
		t.Fatalf("after joining: Forbidden %v Duplicate %v", next.Forbidden, next.Duplicate)
	}
	if want := []message.MemberSeq{{User: "alice", Seq: 2}, {User: "mallory", Seq: 1}}; !slices.Equal(next.Members, want) {
		t.Fatalf("members after the change %v, want %v (bob removed)", next.Members, want)
	}
	// A server API message needs no membership; its sender gets an inbox row too.
	api := grec("system", "team", "maintenance at noon", "")
	api.Server = true
	sv := f.save(t, api)[0]
	if want := []message.MemberSeq{{User: "alice", Seq: 3}, {User: "mallory", Seq: 2}, {User: "system", Seq: 1}}; sv.Forbidden || !slices.Equal(sv.Members, want) {
		t.Fatalf("server message: Forbidden %v Members %v, want %v", sv.Forbidden, sv.Members, want)
	}
}

func testGroupHistory(t *testing.T, f *fixture) {
	f.putGroup(t, "team", "alice", "bob")
	f.putGroup(t, "bob", "alice", "bob") // a group named like a user: kept apart
	f.save(t, rec("bob", "alice", "p2p 1", ""), grec("bob", "team", "team 1", ""), grec("alice", "bob", "group bob", ""),
		rec("alice", "bob", "p2p 2", ""), grec("alice", "team", "team 2", ""))
	texts := func(es []message.Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Msg.Msg)
		}
		return out
	}
	gh, err := f.s.GroupHistory(ctx(t), "alice", "team", 0, 10)
	if err != nil || !slices.Equal(texts(gh), []string{"team 2", "team 1"}) {
		t.Fatalf("GroupHistory(alice, team) = %v, %v", texts(gh), err)
	}
	if gh, _ = f.s.GroupHistory(ctx(t), "alice", "team", gh[0].Seq, 10); !slices.Equal(texts(gh), []string{"team 1"}) {
		t.Fatalf("GroupHistory before %d = %v", gh[0].Seq, texts(gh))
	}
	if got := texts(f.history(t, "alice", "bob", 0, 10)); !slices.Equal(got, []string{"p2p 2", "p2p 1"}) {
		t.Fatalf("History(alice, bob) = %v: want the one-to-one messages only", got)
	}
	if got := texts(f.history(t, "alice", "", 0, 10)); len(got) != 5 {
		t.Fatalf("History(alice, all) = %v: want all five", got)
	}
	if gh, _ = f.s.GroupHistory(ctx(t), "carol", "team", 0, 10); len(gh) != 0 {
		t.Fatalf("a non-member reads %v", texts(gh))
	}
}

// testGroupConcurrentOrder saves group messages from several goroutines: every member
// must hold them in one order, gap-free.
func testGroupConcurrentOrder(t *testing.T, f *fixture) {
	members := []string{"m1", "m2", "m3", "m4"}
	f.putGroup(t, "g", members...)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				recs := []message.Record{grec(members[w], "g", "x", ""), rec(members[w], members[(w+1)%4], "p", "")}
				if _, err := f.s.Save(ctx(t), recs); err != nil {
					t.Errorf("Save %d/%d: %v", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var first []int64
	for _, u := range members {
		es := f.replay(t, u, 0, 1000)
		if got := seqs(t, es); !equalSeqs(got, seqRange(1, int64(len(es)))) {
			t.Fatalf("%s: seqs %v not gap-free", u, got)
		}
		var order []int64
		for _, e := range es {
			if e.Msg.GroupID == "g" {
				order = append(order, e.Msg.MsgID)
			}
		}
		if len(order) != 40 {
			t.Fatalf("%s holds %d group messages, want 40", u, len(order))
		}
		if first == nil {
			first = order
		} else if !slices.Equal(order, first) {
			t.Fatalf("%s sees the group in another order than %s", u, members[0])
		}
	}
}
