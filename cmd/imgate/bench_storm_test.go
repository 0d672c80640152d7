package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgate/bench"
)

// TestBenchStormScenario runs `imgate bench --scenario storm`: its users bind on
// standalone A (--url), A is killed, and every user reconnects through standalone B's
// pick route (--dispatcher) with the cursor it last saw. B's store holds two messages for
// each user (sent through its API beforehand; A has no store, so the cursor is 0), so each
// reconnect replays them before its init ACK. The report must count every drop, every
// rebind and every replayed message.
func TestBenchStormScenario(t *testing.T) {
	const key = "bench-storm-key-0123456789"
	const users, perUser = 20, 2
	t.Setenv("IMGATE_API_KEY", key)
	a := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "none", "--rate-limit", "0")
	b := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "sqlite",
		"--data-dir", t.TempDir(), "--rate-limit", "0")
	for u := range users {
		for i := range perUser {
			body := fmt.Sprintf(`{"senderId":"storm-sender","receiverId":"bstorm-%d","msgType":1,"msg":"m%d"}`, u, i)
			req, _ := http.NewRequest(http.MethodPost, b.HTTP+"/api/v1/messages", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("send: http %d", resp.StatusCode)
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "bench", "--json", "--quiet", "--scenario", "storm", //nolint:gosec // G204: the binary under test
		"--url", a.WS, "--dispatcher", b.HTTP, "--conns", strconv.Itoa(users), "--user-prefix", "bstorm",
		"--duration", "30s", "--storm-max", "30s", "--storm-jitter", "200ms")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill A once it holds every user.
	bound := regexp.MustCompile(`(?m)^imgate_connections\{state="bound"\} (\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(a.HTTP + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if m := bound.FindSubmatch(b); m != nil && string(m[1]) == strconv.Itoa(users) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("A never held %d users (bench: %s)", users, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.Kill9(t)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("bench: %v (%s)", err, errb.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report %q: %v", out.String(), err)
	}
	s := rep.Storm
	if s == nil {
		t.Fatalf("no storm section in %s", out.String())
	}
	if s.Dropped != users || s.Rebound != users || s.Failed != 0 || s.Attempts < users || s.Rebind.Count != users {
		t.Fatalf("storm %+v", *s)
	}
	if s.Replayed != users*perUser || s.Seconds <= 0 || s.Init.Count != users || s.Pick.Count < users {
		t.Fatalf("storm %+v", *s)
	}
	if rep.Conns.Dropped != users || rep.Conns.Live != users || rep.Latency.Init.Count != users {
		t.Fatalf("conns %+v, init latency %+v", rep.Conns, rep.Latency.Init)
	}
}
