package client_test

import (
	"testing"

	"imgate/client"
	"imgate/server"
)

// TestChatThroughDispatcher: two devices found through the dispatcher chat; the receiver
// gets the message with its msgId, seq and the sender's connection id.
func TestChatThroughDispatcher(t *testing.T) {
	n := startNode(t, server.Config{}, nil)
	alice := startDevice(t, client.Config{UserID: "alice", Dispatcher: n.dispatcher()})
	bob := startDevice(t, client.Config{UserID: "bob", Dispatcher: n.dispatcher()})
	bob.waitConnected()
	ack := alice.send("bob", "hello")
	if ack.MsgID == 0 || ack.ClientMsgID == "" || ack.ChatTime.IsZero() {
		t.Fatalf("ack %+v", ack)
	}
	got := bob.waitMessages(1)[0]
	if got.MsgID != ack.MsgID || got.Msg != "hello" || got.SenderID != "alice" || got.Seq != 1 || got.ClientMsgID != ack.ClientMsgID {
		t.Fatalf("delivered %+v, ack %+v", got, ack)
	}
}
