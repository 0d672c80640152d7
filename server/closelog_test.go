package server_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"imgate/server"
)

// syncBuffer is a log destination tests read while the node writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log lines whose msg contains msg.
func (s *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		if l == "" {
			continue
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if strings.Contains(m["msg"].(string), msg) {
			out = append(out, m)
		}
	}
	return out
}

// TestClosesAreLoggedOncePerReason checks that refused and dropped connections say why
// in the log, structured, one line per reason however many there are (within 10 s),
// while every one is counted: refused upgrades (bad path, bad request), failed
// CONNECT_INITs (4400), init timeouts (4408) and rate-limit closes (4429).
func TestClosesAreLoggedOncePerReason(t *testing.T) {
	var logs syncBuffer
	n := startNode(t, server.Config{
		Logger:      slog.New(slog.NewJSONHandler(&logs, nil)),
		InitTimeout: 300 * time.Millisecond, TickInterval: 50 * time.Millisecond,
		RateLimit: 0.001, RateBurst: 2,
	}, nil)
	for range 3 {
		c := dialRaw(t, n.addr)
		c.write([]byte(upgradeRequest("/nope", newKey())))
		if status, _ := c.readHTTP(); !strings.Contains(status, " 404 ") {
			t.Fatalf("bad path: got %q", status)
		}
	}
	for range 3 {
		c := dialWS(t, n.addr)
		c.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": "u", "msgType": 1}})
		c.expectClose(4400)
	}
	for range 2 {
		c := dialWS(t, n.addr)
		c.expectClose(4408)
	}
	for i := range 2 {
		c, _ := login(t, n.addr, "flood", -1)
		for j := range 6 {
			c.send("flood", "x", "m", string(rune('a'+i))+string(rune('a'+j)))
		}
		c.expectClose(4429)
	}
	st := n.srv.Stats()
	if st.Closes["http_refused"] != 3 || st.Closes["bad_init"] != 3 || st.Closes["timeout"] != 2 || st.Closes["rate_limited"] != 2 {
		t.Fatalf("closes counted: %v", st.Closes)
	}
	const msg = "connection closed by the server"
	byReason := map[string][]map[string]any{}
	for _, l := range logs.lines(t, msg) {
		byReason[l["reason"].(string)] = append(byReason[l["reason"].(string)], l)
	}
	for reason, code := range map[string]float64{"http_refused": 0, "bad_init": 4400, "timeout": 4408, "rate_limited": 4429} {
		ls := byReason[reason]
		if len(ls) != 1 {
			t.Fatalf("%s: want one line within 10s, got %d: %v", reason, len(ls), ls)
		}
		if ls[0]["level"] != "WARN" || ls[0]["code"] != code || ls[0]["total"] != 1.0 || ls[0]["ip"] != "127.0.0.1" {
			t.Fatalf("%s: line %v", reason, ls[0])
		}
	}
	if d := byReason["http_refused"][0]["detail"]; d != `404 not found: path "/nope"` {
		t.Fatalf("refused upgrade detail %q", d)
	}
	if s := byReason["timeout"][0]["state"]; s != "await_init" {
		t.Fatalf("init timeout state %q", s)
	}
	if l := byReason["rate_limited"][0]; l["user"] != "flood" || l["state"] != "bound" {
		t.Fatalf("rate-limit close line %v", l)
	}
}
