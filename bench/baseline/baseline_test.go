package baseline

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func dial(t *testing.T, s *Server) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(s.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c
}

func send(t *testing.T, c *websocket.Conn, v string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(v)); err != nil {
		t.Fatal(err)
	}
}

type env struct {
	ChatMsg map[string]any    `json:"chatMsg"`
	Extend  string            `json:"extend"`
	Error   map[string]string `json:"error"`
}

func recv(t *testing.T, c *websocket.Conn) env {
	t.Helper()
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var e env
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return e
}

func bind(t *testing.T, s *Server, user string) *websocket.Conn {
	c := dial(t, s)
	send(t, c, `{"chatMsg":{"senderId":"`+user+`","msgType":0}}`)
	if e := recv(t, c); e.ChatMsg["msgType"] != float64(11) || e.Extend == "" {
		t.Fatalf("init ACK %+v", e)
	}
	return c
}

func TestRouting(t *testing.T) {
	s, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a1, a2, b := bind(t, s, "alice"), bind(t, s, "alice"), bind(t, s, "bob")
	send(t, a1, `{"chatMsg":{"senderId":"alice","receiverId":"bob","msg":"hi","msgType":1,"clientMsgId":"k1","media":{"w":640}}}`)
	ack := recv(t, a1)
	if ack.ChatMsg["msgType"] != float64(11) || ack.ChatMsg["clientMsgId"] != "k1" || ack.ChatMsg["msgId"] == "" {
		t.Fatalf("ACK %+v", ack)
	}
	for _, c := range []*websocket.Conn{b, a2} {
		d := recv(t, c)
		if d.ChatMsg["msg"] != "hi" || d.ChatMsg["msgId"] != ack.ChatMsg["msgId"] || d.ChatMsg["media"] == nil || d.Extend == "" {
			t.Fatalf("delivery %+v", d)
		}
	}
	send(t, b, `{"chatMsg":{"senderId":"alice","receiverId":"bob","msgType":1,"clientMsgId":"k2"}}`)
	if e := recv(t, b); e.Error["code"] != "forbidden" || e.ChatMsg["clientMsgId"] != "k2" {
		t.Fatalf("forbidden %+v", e)
	}
	send(t, b, `{"chatMsg":{"senderId":"bob","msgType":9}}`)
	if e := recv(t, b); e.ChatMsg["msgType"] != float64(9) {
		t.Fatalf("keepalive %+v", e)
	}
}

func TestFirstMessageMustBeConnectInit(t *testing.T) {
	s, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := dial(t, s)
	send(t, c, `{"chatMsg":{"senderId":"x","msgType":1}}`)
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4400 {
		t.Fatalf("want close 4400, got %v", err)
	}
}
