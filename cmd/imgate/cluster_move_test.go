package main

import (
	"testing"
	"time"

	"imgate/cluster/clustertest"
)

// TestClusterUserMovesBetweenNodes: alice's only device leaves node A for node B and back
// while bob streams messages to her from a third node. Each move is a new connection
// with her cursor on a node that may not yet be in presence when a message is in flight:
// every message bob sent reaches her (replay and live), none twice, in both delivery modes.
func TestClusterUserMovesBetweenNodes(t *testing.T) {
	for _, mode := range []string{"fanout", "routed"} {
		t.Run(mode, func(t *testing.T) {
			c := clustertest.NewCluster(t, binPath)
			c.Delivery = mode
			c.StartSaver()
			c.StartDispatch()
			nodes := c.StartNodes(3)
			url := nodeURLs(t, c)

			a := newAudit(t, nil)
			alice := a.device("alice", "d1", url[nodes[0].ID])
			bob := a.device("bob", "d1", url[nodes[2].ID])
			done := a.steady(3*time.Second, 100, []*auditDevice{bob}, func(*auditDevice) string { return "alice" })
			for i := range 4 {
				target := url[nodes[(i+1)%2].ID]
				a.mu.Lock()
				alice.url = target // where reconnectLoop dials next
				conn := alice.conn
				a.mu.Unlock()
				if conn != nil {
					_ = conn.Close()
				}
				clustertest.WaitFor(t, 10*time.Second, "alice connected on the other node", func() bool {
					return alice.connectedURL() == target
				})
				time.Sleep(300 * time.Millisecond) // the scenario: messages flow on the new node for a while
			}
			<-done
			rep := a.verify(t, 20*time.Second)
			t.Logf("%s: sent %d, acked %d, resent %d; alice moved %d times", mode, rep.sent, rep.acked, rep.resends, alice.reconnects)
			a.checkReplay(t, "alice", url[nodes[1].ID])
		})
	}
}
