package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"imgate/client"
	"imgate/server"
)

// TestUnauthorizedIsNotRetried: a node with auth closes a bad token with 4401; Run
// returns ErrUnauthorized after that one attempt, and the pending Send fails with it.
func TestUnauthorizedIsNotRetried(t *testing.T) {
	auth, err := server.NewHMACAuth("client-test-secret-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, server.Config{Auth: auth}, nil)

	c, err := client.New(client.Config{
		UserID: "mallory", URL: n.wsURL(), Token: client.StaticToken("not-a-token"),
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	sendErr := make(chan error, 1)
	go func() {
		_, err := c.Send(context.Background(), client.Message{ReceiverID: "bob", Msg: "hi"})
		sendErr <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runErr := c.Run(ctx)
	if !errors.Is(runErr, client.ErrUnauthorized) {
		t.Fatalf("Run: %v, want ErrUnauthorized", runErr)
	}
	if err := <-sendErr; !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("pending Send: %v, want ErrUnauthorized", err)
	}
	if s := c.Stats(); s.Connects != 1 {
		t.Fatalf("%d connection attempts, want 1: a 4401 was retried", s.Connects)
	}
	if got := n.server().Stats().Closes["unauthorized"]; got != 1 {
		t.Fatalf("node closed %d connections with 4401, want 1", got)
	}
	if st, _ := c.State(); st != client.StateStopped {
		t.Fatalf("state %v after Run", st)
	}
	if _, err := c.Send(context.Background(), client.Message{ReceiverID: "bob", Msg: "hi"}); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Send after Run: %v, want ErrClosed", err)
	}

	// A good token from the same secret binds.
	good := startDevice(t, client.Config{UserID: "alice", URL: n.wsURL(), Token: func(context.Context) (string, error) {
		return auth.Token("alice", time.Hour), nil
	}})
	good.waitConnected()
}

// TestFileCursorAcrossInstances: a device's cursor survives in a file; a new Client on the
// same file gets only what came while it was away.
func TestFileCursorAcrossInstances(t *testing.T) {
	n := startNode(t, server.Config{}, nil)
	path := filepath.Join(t.TempDir(), "bob.cursor")
	alice := startDevice(t, client.Config{UserID: "alice", URL: n.wsURL()})
	bob1 := startDevice(t, client.Config{UserID: "bob", URL: n.wsURL(), Cursor: client.FileCursor{Path: path}})
	bob1.waitConnected()
	for _, s := range []string{"m1", "m2", "m3"} {
		alice.send("bob", s)
	}
	bob1.waitMessages(3)
	bob1.close()
	if b, err := os.ReadFile(path); err != nil || strings.TrimSpace(string(b)) != "3" {
		t.Fatalf("cursor file %q (%v), want 3", b, err)
	}
	for _, s := range []string{"m4", "m5", "m6"} {
		alice.send("bob", s)
	}
	bob2 := startDevice(t, client.Config{UserID: "bob", URL: n.wsURL(), Cursor: client.FileCursor{Path: path}})
	got := bob2.waitMessages(3)
	bob2.waitConnected()
	for i, m := range got {
		if m.Msg != []string{"m4", "m5", "m6"}[i] || m.Seq != int64(4+i) {
			t.Fatalf("bob2 got %+v", got)
		}
	}
	if len(got) != 3 {
		t.Fatalf("bob2 got %d messages, want 3", len(got))
	}
	waitFor(t, 5*time.Second, "cursor 6 stored", func() bool {
		seq, ok, err := client.FileCursor{Path: path}.Load()
		return err == nil && ok && seq == 6
	})
}

// TestCursorAheadStartsOver: a device whose cursor is above the inbox (the node's store was
// reset) is told so in the ACK; it starts over from 0 and gets the inbox it never saw.
func TestCursorAheadStartsOver(t *testing.T) {
	n := startNode(t, server.Config{}, nil)
	alice := startDevice(t, client.Config{UserID: "alice", URL: n.wsURL()})
	alice.send("bob", "r1")
	alice.send("bob", "r2")
	cur := &client.MemoryCursor{}
	if err := cur.Save(100); err != nil {
		t.Fatal(err)
	}
	bob := startDevice(t, client.Config{UserID: "bob", URL: n.wsURL(), Cursor: cur})
	got := bob.waitMessages(2)
	if got[0].Msg != "r1" || got[1].Msg != "r2" {
		t.Fatalf("bob got %+v", got)
	}
	waitFor(t, 5*time.Second, "cursor 2", func() bool { seq, _, _ := cur.Load(); return seq == 2 })
}

// TestTooLargeFailsOnceAndGoesOn: a message over the node's limit (close 1009) fails its
// Send with ErrTooLarge once and is not resent; the Client reconnects and goes on. A
// message over the Client's own limit never leaves it.
func TestTooLargeFailsOnceAndGoesOn(t *testing.T) {
	n := startNode(t, server.Config{MaxMessageBytes: 1024}, nil)
	alice := startDevice(t, client.Config{UserID: "alice", URL: n.wsURL()})
	bob := startDevice(t, client.Config{UserID: "bob", URL: n.wsURL()})
	alice.waitConnected()
	bob.waitConnected()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := alice.Send(ctx, client.Message{ReceiverID: "bob", Msg: strings.Repeat("x", 2000)})
	if !errors.Is(err, client.ErrTooLarge) {
		t.Fatalf("Send: %v, want ErrTooLarge", err)
	}
	alice.send("bob", "small")
	if got := bob.waitMessages(1); got[0].Msg != "small" {
		t.Fatalf("bob got %+v", got)
	}
	if s := alice.Stats(); s.Binds != 2 {
		t.Fatalf("alice bound %d times, want 2 (one 1009, no loop)", s.Binds)
	}
	if got := n.server().Stats().Closes["message_too_big"]; got != 1 {
		t.Fatalf("node closed %d connections with 1009, want 1", got)
	}
	_, err = alice.Send(ctx, client.Message{ReceiverID: "bob", Msg: strings.Repeat("x", 70<<10)})
	if !errors.Is(err, client.ErrTooLarge) || alice.Stats().Binds != 2 {
		t.Fatalf("Send over the Client's limit: %v (binds %d)", err, alice.Stats().Binds)
	}
}

// TestKeepaliveHoldsAnIdleConnection: with KEEPALIVE under the node's idle timeout a silent
// device keeps its one connection for several timeouts; without it the node closes 4408.
func TestKeepaliveHoldsAnIdleConnection(t *testing.T) {
	const idle = 300 * time.Millisecond
	n := startNode(t, server.Config{IdleTimeout: idle, TickInterval: 20 * time.Millisecond}, nil)
	quiet := startDevice(t, client.Config{UserID: "quiet", URL: n.wsURL(), KeepaliveInterval: time.Hour})
	kept := startDevice(t, client.Config{UserID: "kept", URL: n.wsURL(), KeepaliveInterval: idle / 4})
	kept.waitConnected()
	waitFor(t, 10*time.Second, "the quiet device closed with 4408", func() bool {
		return n.server().Stats().Closes["timeout"] >= 1 && quiet.Stats().Binds >= 1
	})
	// The property is about time passing: hold for 5 idle timeouts.
	<-time.After(5 * idle)
	if s := kept.Stats(); s.Binds != 1 || s.Connects != 1 {
		t.Fatalf("kept device reconnected: %+v", s)
	}
	if st, _ := kept.State(); st != client.StateConnected {
		t.Fatalf("kept device %v", st)
	}
}

// TestReceipts: bob signs alice's message; alice's OnReceipt gets it.
func TestReceipts(t *testing.T) {
	n := startNode(t, server.Config{}, nil)
	alice := startDevice(t, client.Config{UserID: "alice", URL: n.wsURL()})
	bob := startDevice(t, client.Config{UserID: "bob", URL: n.wsURL()})
	bob.waitConnected()
	ack := alice.send("bob", "read me")
	m := bob.waitMessages(1)[0]
	if err := bob.Sign(context.Background(), m.SenderID, m.MsgID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the receipt", func() bool {
		alice.mu.Lock()
		defer alice.mu.Unlock()
		return len(alice.receipts) == 1
	})
	alice.mu.Lock()
	r := alice.receipts[0]
	alice.mu.Unlock()
	if r.SignerID != "bob" || r.ReceiverID != "alice" || r.MsgID != ack.MsgID {
		t.Fatalf("receipt %+v, ack %+v", r, ack)
	}
	if err := bob.Sign(context.Background(), "", 1); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("Sign without a receiver: %v", err)
	}
}
