package server_test

import (
	"strings"
	"testing"
	"time"

	"imgate/server"
)

// upgradeStatus sends an upgrade request with the extra header lines and returns the
// status line of the answer.
func upgradeStatus(t *testing.T, addr string, extra ...string) string {
	t.Helper()
	c := dialRaw(t, addr)
	c.write([]byte(upgradeRequest("/ws", newKey(), extra...)))
	status, _ := c.readHTTP()
	return status
}

// TestOriginCheck: PROTOCOL §7. No Origin (a non-browser client) passes, an allowed
// Origin passes (exact scheme://host[:port], host case-insensitive, default port
// implied), any other Origin gets 403 before the upgrade.
func TestOriginCheck(t *testing.T) {
	n := startNode(t, server.Config{AllowedOrigins: []string{"http://127.0.0.1:8080", "https://Chat.Example.com"}}, nil)
	for _, tt := range []struct {
		origin string
		want   string
	}{
		{"", " 101 "},
		{"http://127.0.0.1:8080", " 101 "},
		{"https://chat.example.com", " 101 "},
		{"https://CHAT.example.com:443", " 101 "},
		{"http://127.0.0.1:8081", " 403 "},
		{"http://chat.example.com", " 403 "},
		{"https://evil.example", " 403 "},
		{"null", " 403 "},
	} {
		var extra []string
		if tt.origin != "" {
			extra = append(extra, "Origin: "+tt.origin)
		}
		if got := upgradeStatus(t, n.addr, extra...); !strings.Contains(got, tt.want) {
			t.Errorf("Origin %q: got %q, want%s", tt.origin, got, tt.want)
		}
	}
	if got := n.srv.Stats().Closes["origin_refused"]; got != 4 {
		t.Errorf("origin_refused = %d, want 4", got)
	}

	// No allowed origins: every browser Origin is refused, non-browser clients pass.
	bare := startNode(t, server.Config{}, nil)
	if got := upgradeStatus(t, bare.addr, "Origin: http://127.0.0.1:8080"); !strings.Contains(got, " 403 ") {
		t.Errorf("no allowed origins: got %q, want 403", got)
	}
	if got := upgradeStatus(t, bare.addr); !strings.Contains(got, " 101 ") {
		t.Errorf("no Origin: got %q, want 101", got)
	}

	// "*" allows any Origin, only when configured explicitly.
	star := startNode(t, server.Config{AllowedOrigins: []string{"*"}}, nil)
	if got := upgradeStatus(t, star.addr, "Origin: https://anything.example"); !strings.Contains(got, " 101 ") {
		t.Errorf("*: got %q, want 101", got)
	}
}

func TestOriginConfigValidate(t *testing.T) {
	for _, bad := range []string{"example.com", "http://", "http://x/path", "http://x:port", ""} {
		if err := (server.Config{AllowedOrigins: []string{bad}}).Validate(); err == nil {
			t.Errorf("AllowedOrigins %q: Validate accepted it", bad)
		}
	}
}

// TestBareLFHandshake: a head with LF-only line ends is answered 400 at once, not left
// to the init timeout.
func TestBareLFHandshake(t *testing.T) {
	n := startNode(t, server.Config{InitTimeout: 30 * time.Second}, nil)
	c := dialRaw(t, n.addr)
	c.write([]byte("GET /ws HTTP/1.1\nHost: x\n\n"))
	start := time.Now()
	if status, _ := c.readHTTP(); !strings.Contains(status, " 400 ") {
		t.Fatalf("got %q, want 400", status)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("400 after %v", d)
	}
}

// TestPendingPerIPCap: one source IP may hold MaxPendingPerIP connections that have not
// sent CONNECT_INIT; the next is refused with 503 and counted. A connection that inits
// frees its slot, and so does one that closes.
func TestPendingPerIPCap(t *testing.T) {
	const max = 3
	n := startNode(t, server.Config{MaxPendingPerIP: max, InitTimeout: 30 * time.Second}, nil)
	var waiting []*rawClient
	for i := 0; i < max; i++ {
		c := dialRaw(t, n.addr)
		if i%2 == 0 {
			c.upgrade("/ws") // upgraded but no CONNECT_INIT: still pending
		}
		waiting = append(waiting, c)
	}
	time.Sleep(100 * time.Millisecond) // let the node accept the silent ones
	if got := upgradeStatus(t, n.addr); !strings.Contains(got, " 503 ") {
		t.Fatalf("connection over the cap: got %q, want 503", got)
	}
	if got := n.srv.Stats().Closes["pending_per_ip"]; got != 1 {
		t.Fatalf("pending_per_ip = %d, want 1", got)
	}
	// CONNECT_INIT frees a slot.
	waiting[0].sendText(`{"chatMsg":{"senderId":"alice","msgType":0}}`)
	waiting[0].expectType(11)
	if got := upgradeStatus(t, n.addr); !strings.Contains(got, " 101 ") {
		t.Fatalf("after an init: got %q, want 101", got)
	}
	// That one is pending now; closing another frees a slot.
	_ = waiting[1].nc.Close()
	time.Sleep(100 * time.Millisecond)
	if got := upgradeStatus(t, n.addr); !strings.Contains(got, " 101 ") {
		t.Fatalf("after a close: got %q, want 101", got)
	}

	// Negative: no cap.
	off := startNode(t, server.Config{MaxPendingPerIP: -1, InitTimeout: 30 * time.Second}, nil)
	for i := 0; i < server.DefaultMaxPendingPerIP+5; i++ {
		_ = dialRaw(t, off.addr)
	}
	if got := upgradeStatus(t, off.addr); !strings.Contains(got, " 101 ") {
		t.Fatalf("no cap: got %q, want 101", got)
	}
}
