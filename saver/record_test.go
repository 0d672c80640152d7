package saver

import (
	"testing"

	"imgate/codec"
	"imgate/message"
)

// TestAssignStoredOnlyShrinksWhatIsNew: what assign finds new knowing the stored records
// is a subset of what it finds new without them. The PostgreSQL save counts each user's
// seqs over the pass without (and advances the heads by that), then assigns over the pass
// with: a record new only in the second pass got seqs no head reserved. Seen with a
// record whose clientMsgId matched an earlier record of the batch that duplicated a
// stored one by msgId.
func TestAssignStoredOnlyShrinksWhatIsNew(t *testing.T) {
	rec := func(id int64, from, to, cid string) message.Record {
		return message.Record{Msg: codec.ChatMsg{MsgID: id, SenderID: from, ReceiverID: to, MsgType: codec.Words, Msg: "x", ClientMsgID: cid}, Node: "n"}
	}
	recs := []message.Record{rec(5, "s", "a", "b"), rec(7, "s", "bob", "b")}
	stored := []message.Saved{{Record: rec(5, "s", "a", "other"), ReceiverSeq: 1, SenderSeq: 1}}

	counts := map[string]int64{}
	_, freshWithout := assign(recs, nil, counts, nil)
	heads := map[string]int64{}
	for u := range counts {
		heads[u] = 10
	}
	out, freshWith := assign(recs, stored, heads, nil)
	without := map[int]bool{}
	for _, i := range freshWithout {
		without[i] = true
	}
	for _, i := range freshWith {
		if !without[i] {
			t.Errorf("record %d is new only once the stored records are known (seqs %d/%d for %s)", i, out[i].ReceiverSeq, out[i].SenderSeq, out[i].Msg.ReceiverID)
		}
	}
	if len(heads) != len(counts) {
		t.Errorf("assign gave seqs to users the first pass did not count: %v vs %v", heads, counts)
	}
	if out[1].Msg.MsgID != 5 {
		t.Errorf("the resend under clientMsgId %q is answered with msgId %d, want the stored 5", "b", out[1].Msg.MsgID)
	}
}
