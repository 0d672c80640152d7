package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"imgate/client"
	"imgate/cluster/clustertest"
)

// TestClientSurvivesRestart: two imgate/client devices found through the dispatcher of a
// real `imgate standalone` (SQLite) keep chatting across a SIGTERM and a restart on the
// same ports and data dir: every acknowledged message reaches bob once, in seq order.
func TestClientSurvivesRestart(t *testing.T) {
	args := []string{"standalone", "--ws-addr", freeAddr(t), "--http-addr", freeAddr(t), "--data-dir", t.TempDir()}
	p := startImgate(t, args...)
	var mu sync.Mutex
	var got []client.Message
	devices := map[string]*client.Client{}
	for _, user := range []string{"alice", "bob"} {
		cfg := client.Config{UserID: user, Dispatcher: p.HTTP, Cursor: client.FileCursor{Path: filepath.Join(t.TempDir(), user)},
			MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}
		if user == "bob" {
			cfg.OnMessage = func(m client.Message) { mu.Lock(); got = append(got, m); mu.Unlock() }
		}
		devices[user] = runClient(t, cfg)
	}
	clustertest.WaitFor(t, 10*time.Second, "bob bound", func() bool { s, _ := devices["bob"].State(); return s == client.StateConnected })
	acked := map[int64]bool{}
	send := func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ack, err := devices["alice"].Send(ctx, client.Message{ReceiverID: "bob", Msg: fmt.Sprintf("m%d", i)})
		if err != nil {
			t.Fatalf("send m%d: %v", i, err)
		}
		acked[ack.MsgID] = true
	}
	for i := range 10 {
		send(i)
	}
	p.Signal(syscall.SIGTERM)
	<-p.Exited()
	startImgate(t, args...)
	for i := 10; i < 20; i++ {
		send(i) // the first ones wait for the reconnect
	}
	clustertest.WaitFor(t, 15*time.Second, "bob got 20", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 20 })
	mu.Lock()
	defer mu.Unlock()
	for i, m := range got {
		if m.Seq != int64(i+1) || !acked[m.MsgID] || m.Msg != fmt.Sprintf("m%d", i) {
			t.Fatalf("bob's message %d: %+v", i, m)
		}
	}
	if len(got) != 20 || len(acked) != 20 {
		t.Fatalf("bob got %d, %d acknowledged", len(got), len(acked))
	}
}

// TestClientGroups: imgate/client devices of a real `imgate standalone` (SQLite, a group
// made through the server API): alice's Message with GroupID reaches bob with GroupID
// and without ReceiverID, and a non-member's Send ends with ErrForbidden.
func TestClientGroups(t *testing.T) {
	const key = "client-groups-api-key-0123456789"
	t.Setenv("IMGATE_API_KEY", key)
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir())
	if st, ans := apiCall(t, "PUT", p.HTTP+"/api/v1/groups/team", key, map[string]any{"members": []string{"alice", "bob"}}); st != 200 {
		t.Fatalf("PUT /api/v1/groups/team: %d %v", st, ans)
	}
	got := make(chan client.Message, 4)
	devices := map[string]*client.Client{}
	for _, user := range []string{"alice", "bob", "dave"} {
		cfg := client.Config{UserID: user, Dispatcher: p.HTTP}
		if user == "bob" {
			cfg.OnMessage = func(m client.Message) { got <- m }
		}
		devices[user] = runClient(t, cfg)
	}
	clustertest.WaitFor(t, 10*time.Second, "bob bound", func() bool { s, _ := devices["bob"].State(); return s == client.StateConnected })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ack, err := devices["alice"].Send(ctx, client.Message{GroupID: "team", Msg: "hello team"})
	if err != nil {
		t.Fatalf("alice's group Send: %v", err)
	}
	select {
	case m := <-got:
		if m.GroupID != "team" || m.ReceiverID != "" || m.SenderID != "alice" || m.Msg != "hello team" || m.MsgID != ack.MsgID || m.Seq != 1 {
			t.Fatalf("bob got %+v, want alice's group message %d", m, ack.MsgID)
		}
	case <-ctx.Done():
		t.Fatal("bob got no group message")
	}
	_, err = devices["dave"].Send(ctx, client.Message{GroupID: "team", Msg: "let me in"})
	var se *client.ServerError
	if !errors.Is(err, client.ErrForbidden) || !errors.As(err, &se) || se.Retryable() {
		t.Fatalf("dave's group Send: %v, want ErrForbidden, not retryable", err)
	}
	// Nothing of dave's reaches bob: his next message is alice's next one.
	if _, err := devices["alice"].Send(ctx, client.Message{GroupID: "team", Msg: "after"}); err != nil {
		t.Fatalf("alice's second group Send: %v", err)
	}
	select {
	case m := <-got:
		if m.Msg != "after" || m.Seq != 2 {
			t.Fatalf("bob got %+v, want alice's \"after\" with seq 2", m)
		}
	case <-ctx.Done():
		t.Fatal("bob got no second group message")
	}
}

// runClient starts a client.Client with cfg, running until the test ends; a Run that
// ends with an error fails the test.
func runClient(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = c.Close()
		if err := <-done; err != nil {
			t.Errorf("%s Run: %v", cfg.UserID, err)
		}
	})
	return c
}
