package client

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"imgate/codec"
)

// ackingNode is a test double that acknowledges CONNECT_INIT and every content message.
func ackingNode(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = nc.Close() }()
		if _, err := ws.Upgrade(nc); err != nil {
			return
		}
		for id := int64(1); ; id++ {
			p, err := wsutil.ReadClientText(nc)
			if err != nil {
				return
			}
			e, err := codec.DecodeEnvelope(p)
			if err != nil {
				t.Errorf("client sent %q: %v", p, err)
				return
			}
			ack := &codec.ChatMsg{MsgType: codec.Ack, ClientMsgID: e.ChatMsg.ClientMsgID, MsgID: id}
			if e.ChatMsg.MsgType == codec.ConnectInit {
				ack.MsgID = 0
			}
			if err := wsutil.WriteServerText(nc, codec.AppendEnvelope(nil, &codec.Envelope{ChatMsg: ack})); err != nil {
				return
			}
		}
	}()
	return "ws://" + ln.Addr().String() + "/ws"
}

// TestPendingOrderStaysBounded: the send-order list of a Client that stays connected does
// not keep every message it ever sent.
func TestPendingOrderStaysBounded(t *testing.T) {
	c, err := New(Config{UserID: "u", URL: ackingNode(t), MaxPending: 4})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	t.Cleanup(func() { _ = c.Close() }) // before the node's cleanup, which waits for the connection
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 500 {
		ack, err := c.Send(ctx, Message{ReceiverID: "v", Msg: "m" + strconv.Itoa(i)})
		if err != nil || ack.MsgID == 0 {
			t.Fatalf("send %d: %+v %v", i, ack, err)
		}
	}
	c.mu.Lock()
	n := len(c.order)
	c.mu.Unlock()
	if n > 8 {
		t.Fatalf("order holds %d entries after 500 acknowledged sends, MaxPending 4", n)
	}
	_ = c.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
