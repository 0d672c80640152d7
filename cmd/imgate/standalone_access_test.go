package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"imgate/server"

	"github.com/gorilla/websocket"
)

// TestStandaloneHistoryAuth checks the access rules of the history and presence routes
// on standalone's HTTP address with --auth-secret and IMGATE_API_KEY (PROTOCOL §5, §8),
// and the Host check with --allowed-hosts.
func TestStandaloneHistoryAuth(t *testing.T) {
	const secret, apiKey = "standalone-test-secret", "standalone-api-key-0123456789"
	t.Setenv("IMGATE_API_KEY", apiKey)
	t.Setenv("IMGATE_AUTH_SECRET", secret)
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "memory",
		"--allowed-hosts", "chat.example.com")
	auth, err := server.NewHMACAuth(secret)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := server.NewHMACAuth("another-secret-of-16+")
	alice, bob := "Bearer "+auth.Token("alice", time.Minute), "Bearer "+auth.Token("bob", time.Minute)
	tests := []struct {
		name          string
		path          string
		host          string // empty: the address dialed
		authorization string
		wantStatus    int
	}{
		{name: "history without credential", path: "/api/v1/messages?userId=alice", wantStatus: 401},
		{name: "history with forged token", path: "/api/v1/messages?userId=alice", authorization: "Bearer " + other.Token("alice", time.Minute), wantStatus: 401},
		{name: "history with expired token", path: "/api/v1/messages?userId=alice", authorization: "Bearer " + auth.Token("alice", -time.Second), wantStatus: 401},
		{name: "history with another user's token", path: "/api/v1/messages?userId=alice", authorization: bob, wantStatus: 403},
		{name: "history with own token", path: "/api/v1/messages?userId=alice", authorization: alice, wantStatus: 200},
		{name: "history with API key", path: "/api/v1/messages?userId=alice", authorization: "Bearer " + apiKey, wantStatus: 200},
		{name: "history limit overflow clamped", path: "/api/v1/messages?userId=alice&limit=99999999999999999999", authorization: alice, wantStatus: 200},
		{name: "presence without credential", path: "/api/v1/presence?userId=alice", wantStatus: 401},
		{name: "presence with another user's token", path: "/api/v1/presence?userId=alice", authorization: bob, wantStatus: 403},
		{name: "presence with own token", path: "/api/v1/presence?userId=alice", authorization: alice, wantStatus: 200},
		{name: "presence with API key", path: "/api/v1/presence?userId=alice", authorization: "Bearer " + apiKey, wantStatus: 200},
		{name: "rebinding Host refused", path: "/api/v1/nodes/pick", host: "attacker.example:8080", wantStatus: 421},
		{name: "rebinding Host refused before auth", path: "/api/v1/messages?userId=alice", host: "attacker.example", authorization: alice, wantStatus: 421},
		{name: "allowed Host", path: "/api/v1/nodes/pick", host: "chat.example.com", wantStatus: 200},
		{name: "localhost", path: "/api/v1/nodes/pick", host: "localhost:8080", wantStatus: 200},
		{name: "healthz whatever the Host", path: "/healthz", host: "attacker.example", wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, header, body := httpGet(t, p.HTTP+tt.path, tt.host, tt.authorization)
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", status, tt.wantStatus, body)
			}
			if status == 401 && !strings.HasPrefix(header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer (%q)", header.Get("WWW-Authenticate"))
			}
			if status >= 400 && !strings.Contains(body, `"success":false`) {
				t.Errorf("error answer not in the envelope: %s", body)
			}
		})
	}
	if n := logCount(p.Log(), "unauthenticated"); n != 0 {
		t.Errorf("%d unauthenticated warnings with auth configured", n)
	}
}

// TestStandaloneHistoryOpenWarns checks the development default: without --auth-secret
// or --api-key the routes stay open and one WARN line says so.
func TestStandaloneHistoryOpenWarns(t *testing.T) {
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "memory")
	if status, _, body := httpGet(t, p.HTTP+"/api/v1/messages?userId=alice", "", ""); status != 200 {
		t.Fatalf("open history: status %d: %s", status, body)
	}
	if n := logCount(p.Log(), "level=WARN", "history and presence are unauthenticated"); n != 1 {
		t.Fatalf("%d WARN lines about unauthenticated history, want 1:\n%s", n, p.Tail(20))
	}
}

// httpGet sends a GET with an optional Host and Authorization.
func httpGet(t *testing.T, url, host, authorization string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// logCount counts the lines holding every one of parts.
func logCount(lines []string, parts ...string) int {
	n := 0
next:
	for _, l := range lines {
		for _, part := range parts {
			if !strings.Contains(l, part) {
				continue next
			}
		}
		n++
	}
	return n
}

// TestStandaloneOriginAndAuthOffWarn checks standalone's Origin check (PROTOCOL §7): the
// dispatcher's own page (its HTTP address, also as localhost) and --allowed-origins pass,
// a request without Origin passes, another Origin gets 403; and that running without
// --auth-secret says so in one WARN line at startup.
func TestStandaloneOriginAndAuthOffWarn(t *testing.T) {
	t.Setenv("IMGATE_ALLOWED_ORIGINS", "https://chat.example.com")
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "none")
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(p.HTTP, "http://"))
	for _, tt := range []struct {
		origin string
		want   int
	}{
		{"", 101},
		{p.HTTP, 101},
		{"http://localhost:" + port, 101},
		{"https://chat.example.com", 101},
		{"http://evil.example", 403},
		{"http://127.0.0.1:1", 403},
	} {
		h := http.Header{}
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
		}
		c, resp, err := websocket.DefaultDialer.Dial(p.WS, h)
		got := 0
		if resp != nil {
			got = resp.StatusCode
		}
		if c != nil {
			_ = c.Close()
		}
		if got != tt.want {
			t.Errorf("Origin %q: status %d (%v), want %d", tt.origin, got, err, tt.want)
		}
	}
	if n := logCount(p.Log(), "level=WARN", "AUTH IS OFF"); n != 1 {
		t.Fatalf("%d WARN lines about auth off, want 1:\n%s", n, p.Tail(20))
	}
}

// TestStandaloneDevLogin: with --auth-secret and --dev-login, POST /api/v1/dev/login
// issues a token that opens the WebSocket and reads its user's history; the process
// says so at WARN, and each token at INFO. Without Chromium too (the browser test
// covers the page's use of it).
func TestStandaloneDevLogin(t *testing.T) {
	t.Setenv("IMGATE_AUTH_SECRET", "dev-login-test-secret-0123")
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "memory", "--dev-login")
	if n := logCount(p.Log(), "level=WARN", "DEV LOGIN IS ON"); n != 1 {
		t.Fatalf("%d WARN lines about --dev-login, want 1:\n%s", n, p.Tail(20))
	}
	resp, err := http.Post(p.HTTP+"/api/v1/dev/login", "application/json", strings.NewReader(`{"userId":"dev"}`))
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Data struct {
			UserID string `json:"userId"`
			Token  string `json:"token"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&answer)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || answer.Data.UserID != "dev" || answer.Data.Token == "" {
		t.Fatalf("dev login: %d %+v %v", resp.StatusCode, answer, err)
	}
	c, _, err := websocket.DefaultDialer.Dial(p.WS, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.WriteJSON(map[string]any{"chatMsg": map[string]any{"senderId": "dev", "msgType": 0}, "token": answer.Data.Token})
	var ack struct {
		ChatMsg struct {
			MsgType int `json:"msgType"`
		} `json:"chatMsg"`
	}
	if err := c.ReadJSON(&ack); err != nil || ack.ChatMsg.MsgType != 11 {
		t.Fatalf("CONNECT_INIT with the dev-login token: %+v %v", ack, err)
	}
	if status, _, body := httpGet(t, p.HTTP+"/api/v1/messages?userId=dev", "", "Bearer "+answer.Data.Token); status != 200 {
		t.Fatalf("history with the dev-login token: %d %s", status, body)
	}
	if status, _, _ := httpGet(t, p.HTTP+"/api/v1/messages?userId=other", "", "Bearer "+answer.Data.Token); status != 403 {
		t.Fatalf("another user's history with the dev-login token: %d, want 403", status)
	}
	// The line is written before the answer; the test's reader of stderr may lag.
	for deadline := time.Now().Add(10 * time.Second); logCount(p.Log(), "level=INFO", "dev login issued a token", "user=dev") != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("no INFO line for the issued token:\n%s", p.Tail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
