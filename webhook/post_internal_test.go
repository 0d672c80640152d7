package webhook

import (
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
)

// TestDocumentedExample keeps docs/protocol.md's example true: the body the Sender
// writes for that message, and the signature a receiver must compute for it.
func TestDocumentedExample(t *testing.T) {
	const (
		body = `{"event":"message.offline","messages":[{"userId":"bob","seq":1,"chatMsg":{"senderId":"alice","receiverId":"bob","msg":"hi","msgType":1,"msgId":"7392012345678901234","chatTime":"2026-11-27T10:00:00.123Z","seq":1}}]}`
		sig  = "sha256=3e007ea07217f4518972d16872a222793dcb27daf00f96ff0be848e14ca0a444"
	)
	o := message.Offline{UserID: "bob", Seq: 1, Msg: codec.ChatMsg{
		SenderID: "alice", ReceiverID: "bob", Msg: "hi", MsgType: codec.Words, MsgID: 7392012345678901234,
		ChatTime: time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC),
	}}
	got := appendBody(nil, []item{{json: appendItem(nil, &o)}})
	if string(got) != body {
		t.Fatalf("body\n%s\nwant\n%s", got, body)
	}
	if s := sign([]byte("whsec-0123456789abcdef"), got); s != sig {
		t.Fatalf("signature %s, want %s", s, sig)
	}
}
