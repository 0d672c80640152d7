package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"imgate/cluster/clustertest"
)

const hookSecret = "cmd-webhook-test-secret"

// hookItem is one entry of a webhook POST as a receiver reads it.
type hookItem struct {
	UserID  string         `json:"userId"`
	Seq     int64          `json:"seq"`
	ChatMsg map[string]any `json:"chatMsg"`
}

// hookReceiver is the app backend: a real HTTP server on 127.0.0.1 that verifies each
// POST's signature as docs/protocol.md says and keeps the entries.
type hookReceiver struct {
	t   *testing.T
	srv *httptest.Server

	mu    sync.Mutex
	items []hookItem
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{t: t}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mac := hmac.New(sha256.New, []byte(hookSecret))
		mac.Write(body)
		if !hmac.Equal([]byte("sha256="+hex.EncodeToString(mac.Sum(nil))), []byte(r.Header.Get("X-Imgate-Signature"))) {
			t.Errorf("webhook POST with a bad signature %q", r.Header.Get("X-Imgate-Signature"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p struct {
			Event    string     `json:"event"`
			Messages []hookItem `json:"messages"`
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Event != "message.offline" {
			t.Errorf("webhook body %s: %v", body, err)
		}
		h.mu.Lock()
		h.items = append(h.items, p.Messages...)
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) got() []hookItem {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookItem(nil), h.items...)
}

// sendAcked sends a WORDS message and returns the msgId of its ACK, the next frame.
func (w *wsClient) sendAcked(from, to, text string) string {
	w.t.Helper()
	w.send(map[string]any{"chatMsg": map[string]any{"senderId": from, "receiverId": to, "msg": text, "msgType": 1}})
	ack := w.read()
	if ack["msgType"].(float64) != 11 {
		w.t.Fatalf("want ACK, got %v", ack)
	}
	return ack["msgId"].(string)
}

// TestStandaloneWebhookOfflineOnly: a message to a user with no device produces a
// signed POST with that user's seq; messages to a connected user, to oneself, SIGNED
// receipts and a duplicate resend produce none. The process is stopped with SIGTERM, which drains the
// webhook queue, so "none" is checked after everything was sent.
func TestStandaloneWebhookOfflineOnly(t *testing.T) {
	h := newHookReceiver(t)
	file := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(file, []byte(hookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "memory",
		"--webhook-url", h.srv.URL+"/push", "--webhook-secret-file", file)
	alice, _, _ := dialUser(t, p.WS, "alice", -1)
	carol, _, _ := dialUser(t, p.WS, "carol", -1)

	send := func(to, text string) string { return alice.sendAcked("alice", to, text) }
	toCarol := send("carol", "online")
	if cm := carol.read(); cm["msgId"] != toCarol {
		t.Fatalf("carol got %v", cm)
	}
	toBob1 := send("bob", "offline 1")
	send("alice", "note to self")
	toBob2 := send("bob", "offline 2")
	// A resend of an acknowledged clientMsgId is a duplicate: acknowledged again with
	// the first msgId, delivered to nobody, and no second notification.
	resend := func() string {
		alice.send(map[string]any{"chatMsg": map[string]any{"senderId": "alice", "receiverId": "bob", "msg": "offline 3", "msgType": 1, "clientMsgId": "k-3"}})
		return alice.read()["msgId"].(string)
	}
	toBob3 := resend()
	if again := resend(); again != toBob3 {
		t.Fatalf("the resend got msgId %s, the first %s", again, toBob3)
	}
	carol.send(map[string]any{"chatMsg": map[string]any{"senderId": "carol", "receiverId": "alice", "msgType": 8, "msgId": toCarol}})
	if cm := alice.read(); cm["msgType"].(float64) != 8 {
		t.Fatalf("alice got %v, want the receipt", cm)
	}

	clustertest.WaitFor(t, 10*time.Second, "bob's three notifications", func() bool { return len(h.got()) >= 3 })
	stopImgate(t, p) // SIGTERM drains the webhook queue
	got := h.got()
	if len(got) != 3 {
		t.Fatalf("webhook got %+v, want bob's three messages only", got)
	}
	for i, want := range []struct {
		id, text string
	}{{toBob1, "offline 1"}, {toBob2, "offline 2"}, {toBob3, "offline 3"}} {
		it := got[i]
		cm := it.ChatMsg
		if it.UserID != "bob" || it.Seq != int64(i+1) || cm["msgId"] != want.id || cm["msg"] != want.text ||
			cm["senderId"] != "alice" || cm["receiverId"] != "bob" || cm["seq"] != float64(i+1) || cm["chatTime"] == nil {
			t.Fatalf("webhook item %d: %+v", i, it)
		}
	}
	if l := strings.Join(p.Log(), "\n"); !strings.Contains(l, "offline webhook stopped") || !strings.Contains(l, "sent=3") {
		t.Fatalf("no stop line with sent=3 in the log:\n%s", p.Tail(10))
	}
}

func TestWebhookBadFlagsExit2(t *testing.T) {
	file := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(file, []byte(hookSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  []string
	}{
		{"url without secret", []string{"standalone", "--webhook-url", "http://127.0.0.1:1/"}, nil},
		{"short secret", []string{"standalone", "--webhook-url", "http://127.0.0.1:1/"}, []string{"IMGATE_WEBHOOK_SECRET=short"}},
		{"secret without url", []string{"standalone", "--webhook-secret-file", file}, nil},
		{"not a url", []string{"standalone", "--webhook-url", "push.example.com", "--webhook-secret-file", file}, nil},
		{"store none", []string{"standalone", "--store", "none", "--webhook-url", "http://127.0.0.1:1/", "--webhook-secret-file", file}, nil},
		{"secret and its file", []string{"standalone", "--webhook-url", "http://127.0.0.1:1/", "--webhook-secret-file", file}, []string{"IMGATE_WEBHOOK_SECRET=" + hookSecret}},
		{"saver fanout", []string{"saver", "--delivery", "fanout", "--webhook-url", "http://127.0.0.1:1/", "--webhook-secret-file", file}, nil},
		{"queue", []string{"saver", "--webhook-url", "http://127.0.0.1:1/", "--webhook-secret-file", file, "--webhook-queue", "0"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, tc.args...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || !strings.Contains(string(out), "webhook") {
				t.Fatalf("want exit 2 with one line about the webhook, got %v (%s)", err, out)
			}
		})
	}
}

// TestClusterWebhookOffline runs saver (secret from IMGATE_WEBHOOK_SECRET), dispatcher
// and two nodes on the real services: alice on node 1 writes to bob on node 2 and to
// dave, who is connected nowhere. Only dave's message reaches the webhook, with dave's
// seq; the saver's SIGTERM drains the webhook queue before "none" is checked.
func TestClusterWebhookOffline(t *testing.T) {
	h := newHookReceiver(t)
	t.Setenv("IMGATE_WEBHOOK_SECRET", hookSecret)
	c := clustertest.NewCluster(t, binPath)
	saver := c.Add(clustertest.Start(t, binPath, "saver", true, append(c.SaverArgs(), "--webhook-url", h.srv.URL)...))
	c.StartDispatch()
	nodes := c.StartNodes(2)
	alice, _, _ := dialUser(t, nodes[0].WS, "alice", -1)
	bob, _, _ := dialUser(t, nodes[1].WS, "bob", -1)

	send := func(to, text string) string { return alice.sendAcked("alice", to, text) }
	toBob := send("bob", "online on another node")
	if cm := bob.read(); cm["msgId"] != toBob {
		t.Fatalf("bob got %v", cm)
	}
	toDave := send("dave", "offline")
	clustertest.WaitFor(t, 15*time.Second, "dave's notification", func() bool { return len(h.got()) >= 1 })
	saver.Signal(syscall.SIGTERM)
	select {
	case <-saver.Exited():
	case <-time.After(15 * time.Second):
		t.Fatal("saver did not exit after SIGTERM")
	}
	got := h.got()
	if len(got) != 1 || got[0].UserID != "dave" || got[0].Seq != 1 || got[0].ChatMsg["msgId"] != toDave ||
		got[0].ChatMsg["msg"] != "offline" || got[0].ChatMsg["seq"] != 1.0 {
		t.Fatalf("webhook got %+v, want dave's message at seq 1 only", got)
	}
}

// TestStandaloneWebhookGroupMembers: a group message notifies every member without a
// device, with that member's seq, and neither its sender nor a member who is online.
func TestStandaloneWebhookGroupMembers(t *testing.T) {
	h := newHookReceiver(t)
	const key = "groups-api-key-0123456789"
	t.Setenv("IMGATE_API_KEY", key)
	t.Setenv("IMGATE_WEBHOOK_SECRET", hookSecret)
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "memory",
		"--webhook-url", h.srv.URL+"/push")
	if st, ans := apiCall(t, "PUT", p.HTTP+"/api/v1/groups/team", key, map[string]any{"members": []string{"alice", "bob", "carol", "dave"}}); st != 200 {
		t.Fatalf("PUT group: %d %v", st, ans)
	}
	alice, _, _ := dialUser(t, p.WS, "alice", -1)
	carol, _, _ := dialUser(t, p.WS, "carol", -1)
	alice.send(map[string]any{"chatMsg": map[string]any{"senderId": "alice", "groupId": "team", "msgType": 1, "msg": "hello team"}})
	if ack := alice.read(); ack["msgType"] != float64(11) {
		t.Fatalf("alice got %v, want the ACK", ack)
	}
	if cm := carol.read(); cm["groupId"] != "team" {
		t.Fatalf("carol got %v", cm)
	}
	clustertest.WaitFor(t, 10*time.Second, "bob's and dave's notifications", func() bool { return len(h.got()) >= 2 })
	stopImgate(t, p) // SIGTERM drains the webhook queue
	got := h.got()
	var users []string
	for _, it := range got {
		if it.Seq != 1 || it.ChatMsg["groupId"] != "team" || it.ChatMsg["seq"] != float64(1) {
			t.Fatalf("webhook item %+v", it)
		}
		users = append(users, it.UserID)
	}
	slices.Sort(users)
	if !slices.Equal(users, []string{"bob", "dave"}) {
		t.Fatalf("webhook told of %v, want bob and dave", users)
	}
}

// stopImgate sends p SIGTERM and waits for it to exit.
func stopImgate(t *testing.T, p *clustertest.Proc) {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.Exited():
	case <-time.After(15 * time.Second):
		t.Fatal("imgate did not exit after SIGTERM")
	}
}
