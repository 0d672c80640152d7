package dispatch

import (
	"bytes"
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
)

// TestChatMsgDecodesWithCodec checks that a history message is a chatMsg the codec
// reads back to the stored message: same field names and forms as live delivery.
func TestChatMsgDecodesWithCodec(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 123_000_000, time.UTC)
	tests := []struct {
		name  string
		entry message.Entry
	}{
		{name: "full", entry: message.Entry{Seq: 42, Msg: codec.ChatMsg{
			SenderID: "alice", ReceiverID: "bob", Msg: "hello 😀 \"<&>\"\n", MsgType: codec.Words,
			MsgID: 7392012345678901234, ClientMsgID: "a-17", ChatTime: t0, Seq: 42}}},
		{name: "extra members", entry: message.Entry{Seq: 7, Msg: codec.ChatMsg{
			SenderID: "alice", ReceiverID: "alice", Msg: "https://x/y.png", MsgType: codec.Image,
			MsgID: 1, ChatTime: t0.In(time.FixedZone("CET", 3600)), Seq: 7, Extra: []byte(`"w":640,"meta":{"h":[1,2]}`)}}},
		{name: "no optional fields", entry: message.Entry{Seq: 1, Msg: codec.ChatMsg{
			SenderID: "a", ReceiverID: "b", Msg: "x", MsgType: codec.Voice, MsgID: 5, Seq: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := appendEntry([]byte(`{"chatMsg":`), &tt.entry)
			b = append(b, '}')
			env, err := codec.DecodeEnvelope(b)
			if err != nil {
				t.Fatalf("DecodeEnvelope(%s): %v", b, err)
			}
			got, want := env.ChatMsg, tt.entry.Msg
			if got == nil {
				t.Fatalf("no chatMsg in %s", b)
			}
			if got.SenderID != want.SenderID || got.ReceiverID != want.ReceiverID || got.Msg != want.Msg ||
				got.MsgType != want.MsgType || got.MsgID != want.MsgID || got.ClientMsgID != want.ClientMsgID ||
				!got.ChatTime.Equal(want.ChatTime) || got.Seq != tt.entry.Seq || !bytes.Equal(got.Extra, want.Extra) {
				t.Fatalf("decoded %+v\nwant    %+v\nfrom %s", *got, want, b)
			}
		})
	}
}

// TestHistoryChatMsgIsTheWireForm pins the bytes of a history message: the wire
// encoder's omission and escaping rules (PROTOCOL §3), not encoding/json's.
func TestHistoryChatMsgIsTheWireForm(t *testing.T) {
	e := message.Entry{Seq: 3, Msg: codec.ChatMsg{SenderID: "alice", ReceiverID: "bob",
		Msg: "<b>&\u2028", MsgType: codec.Words, MsgID: 9, Extra: []byte(`"w":1`)}}
	want := `{"senderId":"alice","receiverId":"bob","msg":"<b>&` + "\u2028" + `","msgType":1,"msgId":"9","seq":3,"w":1}`
	if got := appendEntry(nil, &e); string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	wire := codec.AppendEnvelope(nil, &codec.Envelope{ChatMsg: &codec.ChatMsg{SenderID: "alice", ReceiverID: "bob",
		Msg: "<b>&\u2028", MsgType: codec.Words, MsgID: 9, Seq: 3, Extra: []byte(`"w":1`)}})
	if string(wire) != `{"chatMsg":`+want+`}` {
		t.Fatalf("history %s\nwire    %s", want, wire)
	}
}
