package bus

import (
	"fmt"
	"slices"
	"testing"

	"imgate/codec"
	"imgate/message"
)

func TestByNodeGroupOncePerNodeWithItsMembers(t *testing.T) {
	group := message.Saved{
		Record:  message.Record{Msg: codec.ChatMsg{SenderID: "a", GroupID: "g", MsgID: 1, Msg: "hi"}, Node: "n1"},
		Members: []message.MemberSeq{{User: "a", Seq: 5}, {User: "b", Seq: 7}, {User: "c", Seq: 1}, {User: "d", Seq: 2}},
	}
	p2p := message.Saved{Record: message.Record{Msg: codec.ChatMsg{SenderID: "b", ReceiverID: "c", MsgID: 2, Msg: "x"}, Node: "n2"}}
	forbidden := message.Saved{Record: message.Record{Msg: codec.ChatMsg{SenderID: "z", GroupID: "g", MsgID: 3, Msg: "x"}, Node: "n3"}, Forbidden: true}
	routes := map[string][]string{"a": {"n2"}, "b": {"n2", "n3"}, "c": {"n3"}, "d": {"n3"}}
	dests := byNode([]message.Saved{group, p2p, forbidden}, routes)

	users := func(ms []message.MemberSeq) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.User)
		}
		return out
	}
	want := map[string][][]string{
		"n1": {nil},                       // the accepting node: the ACK, no member there
		"n2": {{"a", "b"}, nil},           // a and b, then the one-to-one message
		"n3": {{"b", "c", "d"}, nil, nil}, // b, c, d; the one-to-one message; the forbidden one's ERROR
	}
	if len(dests) != len(want) {
		t.Fatalf("nodes %v, want %d", dests, len(want))
	}
	for node, recs := range want {
		got := dests[node]
		if len(got) != len(recs) {
			t.Fatalf("%s got %d records, want %d", node, len(got), len(recs))
		}
		for i, w := range recs {
			if !slices.Equal(users(got[i].Members), w) {
				t.Errorf("%s record %d members %v, want %v", node, i, users(got[i].Members), w)
			}
		}
	}
	if dests["n3"][2].Msg.MsgID != 3 || !dests["n3"][2].Forbidden {
		t.Errorf("n3 did not get the forbidden record last: %+v", dests["n3"][2])
	}
	if len(group.Members) != 4 {
		t.Error("byNode changed the record it split")
	}
}

// TestOfflineOfNamesMembersWithoutADevice: the webhook hears of the receiver of a
// one-to-one message and of every group member but the sender that presence shows on no
// node, each with the seq of its own inbox; never of a duplicate or a forbidden record.
func TestOfflineOfNamesMembersWithoutADevice(t *testing.T) {
	group := message.Saved{
		Record:  message.Record{Msg: codec.ChatMsg{SenderID: "a", GroupID: "g", MsgID: 1, Msg: "hi", MsgType: codec.Words}},
		Members: []message.MemberSeq{{User: "a", Seq: 5}, {User: "b", Seq: 7}, {User: "c", Seq: 1}, {User: "d", Seq: 2}},
	}
	p2p := message.Saved{Record: message.Record{Msg: codec.ChatMsg{SenderID: "b", ReceiverID: "e", MsgID: 2, Msg: "x", MsgType: codec.Words}}, ReceiverSeq: 9, SenderSeq: 8}
	dup := p2p
	dup.Duplicate = true
	forbidden := message.Saved{Record: message.Record{Msg: codec.ChatMsg{SenderID: "z", GroupID: "g", MsgID: 3, Msg: "x", MsgType: codec.Words}}, Forbidden: true}
	routes := map[string][]string{"b": {"n2"}} // a (the sender), c, d and e have no device
	got := offlineOf([]message.Saved{group, p2p, dup, forbidden}, routes)
	var names []string
	for _, o := range got {
		names = append(names, fmt.Sprintf("%s@%d", o.UserID, o.Seq))
	}
	if want := []string{"c@1", "d@2", "e@9"}; !slices.Equal(names, want) {
		t.Fatalf("offline %v, want %v", names, want)
	}
}
