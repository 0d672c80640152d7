package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"imgate/codec"
)

func TestBackoffIsCappedFullJitter(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: time.Second}
	ceilings := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, ceil := range ceilings {
		ceil *= time.Millisecond
		var hi time.Duration
		for range 200 {
			b.attempt = i
			d := b.next()
			if d < 0 || d >= ceil {
				t.Fatalf("attempt %d: delay %s outside [0, %s)", i, d, ceil)
			}
			hi = max(hi, d)
		}
		if hi < ceil/2 {
			t.Fatalf("attempt %d: 200 delays all under %s: not spread over [0, %s)", i, hi, ceil)
		}
	}
	b.attempt = 1000 // no overflow far out
	if d := b.next(); d < 0 || d >= time.Second {
		t.Fatalf("attempt 1000: %s", d)
	}
	b.reset()
	if d := b.next(); d >= 100*time.Millisecond {
		t.Fatalf("after reset: %s", d)
	}
}

func TestSeenSetIsBounded(t *testing.T) {
	s := newSeenSet(3)
	for id := int64(1); id <= 3; id++ {
		if !s.add(id) {
			t.Fatalf("add %d: reported a duplicate", id)
		}
	}
	if s.add(2) {
		t.Fatal("2 again: not reported as a duplicate")
	}
	s.add(4) // forgets 1, the oldest
	if s.has(1) || !s.has(2) || !s.has(4) || len(s.ids) != 3 {
		t.Fatalf("after eviction: %v", s.ids)
	}
	for id := int64(5); id < 1000; id++ {
		s.add(id)
	}
	if len(s.ids) != 3 || len(s.ring) != 3 {
		t.Fatalf("grew to %d ids", len(s.ids))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"2", 2 * time.Second},
		{" 7 ", 7 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"99999999", maxRetryAfter},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestGroupAndExtraRoundTrip: GroupID travels as chatMsg.groupId and Extra members as
// themselves, through the codec's encoder and decoder.
func TestGroupAndExtraRoundTrip(t *testing.T) {
	m := Message{Type: codec.Image, SenderID: "a", GroupID: "g1", Msg: "https://x/y.png", ClientMsgID: "c1",
		Extra: map[string]json.RawMessage{"w": json.RawMessage(`640`), "meta": json.RawMessage(`{ "h" : 480 }`)}}
	cm, err := toChatMsg(&m)
	if err != nil {
		t.Fatal(err)
	}
	wire := codec.AppendEnvelope(nil, &codec.Envelope{ChatMsg: &cm})
	want := `{"chatMsg":{"senderId":"a","groupId":"g1","msg":"https://x/y.png","msgType":2,"clientMsgId":"c1","meta":{"h":480},"w":640}}`
	if string(wire) != want {
		t.Fatalf("wire\n got %s\nwant %s", wire, want)
	}
	env, err := codec.DecodeEnvelope(wire)
	if err != nil {
		t.Fatal(err)
	}
	back := fromChatMsg(env.ChatMsg, "")
	if back.GroupID != "g1" || back.ReceiverID != "" || string(back.Extra["w"]) != "640" || string(back.Extra["meta"]) != `{"h":480}` || len(back.Extra) != 2 {
		t.Fatalf("decoded %+v", back)
	}
	if _, err := toChatMsg(&Message{Extra: map[string]json.RawMessage{"groupId": json.RawMessage(`"g"`)}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("groupId in Extra: %v", err)
	}
	if _, err := toChatMsg(&Message{Extra: map[string]json.RawMessage{"x": json.RawMessage(`{`)}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad JSON in Extra: %v", err)
	}
	for _, bad := range []Message{
		{Type: codec.Words, Msg: "no receiver"},
		{Type: codec.Words, ReceiverID: "b", GroupID: "g", Msg: "both"},
		{Type: codec.Signed, ReceiverID: "b"},
	} {
		if err := bad.validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("validate(%+v) = %v", bad, err)
		}
	}
}

func TestPermanentCloses(t *testing.T) {
	for code, want := range map[int]bool{
		4401: true, 4400: true, 1002: true, 1003: true, 1007: true, 1008: true,
		1000: false, 1001: false, 1006: false, 1009: false, 1011: false, 1013: false, 4408: false, 4429: false, 4503: false,
	} {
		if got := permanent(&CloseError{Code: code}); got != want {
			t.Errorf("close %d: permanent %v, want %v", code, got, want)
		}
	}
	for status, want := range map[int]bool{400: true, 403: true, 404: true, 421: true, 408: false, 429: false, 500: false, 503: false} {
		if got := permanent(&HTTPError{Status: status}); got != want {
			t.Errorf("HTTP %d: permanent %v, want %v", status, got, want)
		}
	}
	if permanent(errors.New("dial: connection refused")) {
		t.Error("a network error is permanent")
	}
	if !errors.Is(&ServerError{Code: codec.CodeUnavailable, Message: "x"}, ErrUnavailable) || errors.Is(&ServerError{Code: codec.CodeForbidden}, ErrUnavailable) {
		t.Error("ServerError.Is")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, bad := range []Config{
		{URL: "ws://h/ws"},
		{UserID: "u"},
		{UserID: "u", URL: "ws://h/ws", Dispatcher: "http://h"},
		{UserID: "u", URL: "http://h/ws"},
		{UserID: "u", Dispatcher: "ws://h"},
	} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
	}
	c := Config{UserID: "u", URL: "wss://h/ws", QueueLen: 10000}.withDefaults()
	if c.DedupeLen < 2*c.QueueLen || c.MaxBackoff < c.MinBackoff || c.Cursor == nil || c.Logger == nil {
		t.Fatalf("defaults %+v", c)
	}
}

// TestCloseAndRunInEitherOrder: Close before Run, Close during Run and a second Run all
// end without hanging; Sends after Close fail with ErrClosed.
func TestCloseAndRunInEitherOrder(t *testing.T) {
	cfg := Config{UserID: "u", URL: "ws://127.0.0.1:1/ws", MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if err := c.Run(context.Background()); err != nil {
		t.Fatalf("Run after Close: %v", err)
	}
	if _, err := c.Send(context.Background(), Message{ReceiverID: "v", Msg: "m"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}

	c, _ = New(cfg)
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	sendErr := make(chan error, 1)
	go func() {
		_, err := c.Send(context.Background(), Message{ReceiverID: "v", Msg: "m"})
		sendErr <- err
	}()
	_ = c.Close()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := <-sendErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("pending Send: %v", err)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Fatalf("second Run after Close: %v", err)
	}
}
