package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imgate/client"
	"imgate/cluster/clustertest"
)

// binPath is the imgate binary built once for the process tests.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "imgate-bin-")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "imgate")
	out, err := exec.Command("go", "build", "-race", "-ldflags", "-X main.version="+testVersion+" -X main.commit="+testCommit+" -X main.commitTime="+testCommitTime, "-o", binPath, ".").CombinedOutput()
	if err != nil {
		panic("build imgate: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// startImgate runs `imgate` (standalone unless args name another role) with args, waits
// for its ready line, and kills it at cleanup.
func startImgate(t *testing.T, args ...string) *clustertest.Proc {
	t.Helper()
	p := clustertest.Start(t, binPath, "standalone", true, args...)
	t.Cleanup(func() { p.Signal(syscall.SIGKILL) })
	return p
}

// wsClient is a gorilla/websocket client speaking the envelope.
type wsClient struct {
	t *testing.T
	c *websocket.Conn
}

func dialUser(t *testing.T, url, user string, cursor int64) (*wsClient, []map[string]any, map[string]any) {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	w := &wsClient{t: t, c: c}
	init := map[string]any{"chatMsg": map[string]any{"senderId": user, "msgType": 0}}
	if cursor >= 0 {
		init["cursor"] = cursor
	}
	w.send(init)
	var replay []map[string]any
	for {
		cm := w.read()
		if cm["msgType"].(float64) == 11 && cm["msgId"] == nil {
			return w, replay, cm
		}
		replay = append(replay, cm)
	}
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	if err := w.c.WriteJSON(v); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// read returns the chatMsg of the next envelope.
func (w *wsClient) read() map[string]any {
	w.t.Helper()
	_ = w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var env struct {
		ChatMsg map[string]any `json:"chatMsg"`
	}
	if err := w.c.ReadJSON(&env); err != nil {
		w.t.Fatalf("read: %v", err)
	}
	return env.ChatMsg
}

func TestBadFlagsExit2WithOneLine(t *testing.T) {
	const secret = "IMGATE_AUTH_SECRET=0123456789abcdef"
	cases := []struct {
		name string
		args []string
		env  []string // added to the environment (secrets never come from argv)
	}{
		{"unknown flag", []string{"--bogus"}, nil},
		{"bad ws addr", []string{"standalone", "--ws-addr", "nope"}, nil},
		{"bad duration", []string{"--idle-timeout", "soon"}, nil},
		{"bad store", []string{"--store", "mysql"}, nil},
		{"node id range", []string{"--node-id", "2048"}, nil},
		{"unknown role", []string{"frobnicate"}, nil},
		{"stray argument", []string{"standalone", "extra"}, nil},
		{"allowed host with port", []string{"standalone", "--allowed-hosts", "chat.example.com:80"}, nil},
		{"dispatch allowed host URL", []string{"dispatch", "--allowed-hosts", "http://chat.example.com"}, nil},
		{"dispatch short auth secret", []string{"dispatch"}, []string{"IMGATE_AUTH_SECRET=short"}},
		{"auth secret and its file", []string{"standalone", "--auth-secret-file", "/dev/null"}, []string{secret}},
		{"api key and its file", []string{"standalone", "--api-key-file", "/etc/hostname"}, []string{"IMGATE_API_KEY=k"}},
		{"missing secret file", []string{"standalone", "--auth-secret-file", "/nonexistent/secret"}, nil},
		{"token ttl over the maximum", []string{"token", "--user", "u", "--ttl", "48h"}, []string{secret}},
		{"dev login without a secret", []string{"standalone", "--dev-login"}, nil},
		{"dev login on all interfaces", []string{"standalone", "--dev-login", "--http-addr", "0.0.0.0:0"}, []string{secret}},
		{"dispatch dev login on a public name", []string{"dispatch", "--dev-login", "--http-addr", "chat.example.com:8080"}, []string{secret}},
		{"bad max token lifetime", []string{"standalone", "--max-token-lifetime", "-1s"}, []string{secret}},
		{"dispatchers zero", []string{"dispatch", "--dispatchers", "0"}, nil},
		{"dispatchers over the maximum", []string{"dispatch", "--dispatchers", "65"}, nil},
		// PROTOCOL §7: secrets never only from argv.
		{"auth secret on the command line", []string{"standalone", "--auth-secret", "0123456789abcdef"}, nil},
		{"api key on the command line", []string{"dispatch", "--api-key", "0123456789abcdef"}, nil},
		{"webhook secret on the command line", []string{"saver", "--webhook-secret", "0123456789abcdef0123456789abcdef"}, nil},
		{"token secret on the command line", []string{"token", "--auth-secret", "0123456789abcdef", "--user", "u"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binPath, tc.args...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 2 {
				t.Fatalf("want exit 2, got %v (%s)", err, out)
			}
			if lines := strings.Count(strings.TrimSpace(string(out)), "\n"); lines != 0 {
				t.Fatalf("want one line, got %q", out)
			}
			if strings.Contains(tc.name, "on the command line") != strings.Contains(string(out), "on the command line is visible") {
				t.Fatalf("the refusal of a secret in argv is not the error here: %q", out)
			}
		})
	}
}

// TestKill9LosesNothingAcknowledged sends messages, kills the process with SIGKILL right
// after the last ACK, restarts it on the same data dir and checks that the receiver's
// replay holds every acknowledged message.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	args := []string{"standalone", "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--data-dir", dir}
	p := startImgate(t, args...)
	alice, _, _ := dialUser(t, p.WS, "alice", -1)
	acked := map[string]bool{}
	const n = 200
	for i := range n {
		alice.send(map[string]any{"chatMsg": map[string]any{
			"senderId": "alice", "receiverId": "bob", "msg": fmt.Sprintf("m%d", i), "msgType": 1,
			"clientMsgId": fmt.Sprintf("k-%d", i),
		}})
	}
	for len(acked) < n {
		cm := alice.read()
		if cm["msgType"].(float64) != 11 {
			t.Fatalf("want ACK, got %v", cm)
		}
		acked[cm["msgId"].(string)] = true
	}
	p.Signal(syscall.SIGKILL)
	<-p.Exited()

	p2 := startImgate(t, args...)
	_, replay, ack := dialUser(t, p2.WS, "bob", 0)
	if got := int64(ack["seq"].(float64)); got != n {
		t.Fatalf("bob's newest seq %d, want %d", got, n)
	}
	seen := map[string]bool{}
	for i, cm := range replay {
		if int64(cm["seq"].(float64)) != int64(i+1) {
			t.Fatalf("replay %d has seq %v", i, cm["seq"])
		}
		seen[cm["msgId"].(string)] = true
	}
	for id := range acked {
		if !seen[id] {
			t.Fatalf("acknowledged message %s lost after kill -9 (replayed %d)", id, len(replay))
		}
	}
	// The resend of an acknowledged clientMsgId after the restart is a duplicate.
	alice2, _, _ := dialUser(t, p2.WS, "alice", -1)
	alice2.send(map[string]any{"chatMsg": map[string]any{
		"senderId": "alice", "receiverId": "bob", "msg": "m0", "msgType": 1, "clientMsgId": "k-0",
	}})
	if cm := alice2.read(); !acked[cm["msgId"].(string)] {
		t.Fatalf("resend after restart got a new msgId: %v", cm)
	}
	// History over HTTP sees the messages too.
	resp, err := http.Get(p2.HTTP + "/api/v1/messages?userId=bob&peerId=alice&limit=10")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var hist struct {
		Data struct {
			Messages []map[string]any `json:"messages"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&hist); err != nil || len(hist.Data.Messages) != 10 {
		t.Fatalf("history: %v, %d messages", err, len(hist.Data.Messages))
	}
}

// TestSIGTERMClosesClientsWith1001 checks the graceful stop.
func TestSIGTERMClosesClientsWith1001(t *testing.T) {
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "memory")
	c, _, _ := dialUser(t, p.WS, "u", -1)
	p.Signal(syscall.SIGTERM)
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := c.c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("want close 1001, got %v", err)
	}
	select {
	case <-p.Exited():
		if p.Err != nil {
			t.Fatalf("exit: %v", p.Err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("imgate did not exit after SIGTERM")
	}
}

// TestAuthToken checks that a token from `imgate token` (secret from IMGATE_AUTH_SECRET)
// opens a node started with --auth-secret-file (the file's trailing newline trimmed) and
// that a missing one is refused with 4401. The device is imgate/client, found through the
// process's dispatcher: a 4401 ends its Run after one attempt.
func TestAuthToken(t *testing.T) {
	const secret = "standalone-test-secret"
	tok := exec.Command(binPath, "token", "--user", "tina")
	tok.Env = append(os.Environ(), "IMGATE_AUTH_SECRET="+secret)
	out, err := tok.Output()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "none", "--auth-secret-file", file)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	good, err := client.New(client.Config{UserID: "tina", Dispatcher: p.HTTP, Token: client.StaticToken(strings.TrimSpace(string(out)))})
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- good.Run(ctx) }()
	clustertest.WaitFor(t, 10*time.Second, "tina bound", func() bool { s, _ := good.State(); return s == client.StateConnected })
	_ = good.Close()
	if err := <-runErr; err != nil {
		t.Fatalf("Run with a good token: %v", err)
	}
	// Without a token: 4401, which the client does not retry.
	bad, err := client.New(client.Config{UserID: "tina", URL: p.WS})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Run(ctx); !errors.Is(err, client.ErrUnauthorized) || bad.Stats().Connects != 1 {
		t.Fatalf("Run without a token: %v after %d attempts, want ErrUnauthorized after 1", err, bad.Stats().Connects)
	}
}
