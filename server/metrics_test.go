package server_test

import (
	"testing"
	"time"

	"imgate/server"
)

// TestStatsForMetrics checks the figures cmd/imgate exports: binds, accepted, ERROR
// answers by code, the accept → persisted → written latency of an ACK, and the loop
// queues back at zero bytes once written.
func TestStatsForMetrics(t *testing.T) {
	n := startNode(t, server.Config{}, newMemInbox())
	alice, _ := login(t, n.addr, "alice", -1)
	alice.send("alice", "bob", "hi", "c1")
	alice.expectType(11)
	alice.send("mallory", "bob", "hi", "c2") // not the connection's user
	if e := alice.expectType(12); e.Error.Code != "forbidden" {
		t.Fatalf("want ERROR forbidden, got %+v", e)
	}
	waitFor(t, 5*time.Second, "the ACK's written latency", func() bool { return n.srv.Stats().Written.Count == 1 })
	st := n.srv.Stats()
	if st.Binds != 1 || st.Accepted != 1 || st.Errors["forbidden"] != 1 || st.Errors["unavailable"] != 0 {
		t.Fatalf("stats %+v", st)
	}
	for stage, h := range map[string]server.Histogram{"persisted": st.Persisted, "written": st.Written} {
		top := h.Buckets[server.LatencyBounds[len(server.LatencyBounds)-1]]
		if h.Count != 1 || top != 1 || h.Sum <= 0 || h.Sum > 10 {
			t.Fatalf("%s latency: %+v", stage, h)
		}
	}
	if st.Written.Sum < st.Persisted.Sum {
		t.Fatalf("written (%v s) before persisted (%v s)", st.Written.Sum, st.Persisted.Sum)
	}
	waitFor(t, 5*time.Second, "empty loop queues", func() bool { return n.srv.Stats().QueuedBytes == 0 })
	if server.CloseCode("slow_consumer") != 4503 || server.CloseCode("reset") != 0 {
		t.Fatal("CloseCode")
	}
}
