package main

import (
	"fmt"
	"maps"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imgate/cluster/clustertest"
)

// TestClusterCrossNode runs saver, dispatcher and three nodes on the real services: alice
// on node 1, bob on node 2, alice's second device on node 3. Messages, seqs, SIGNED
// receipts and presence cross nodes; then a steady 100 msgs/s from alice to bob measures
// the cross-node delivery latency (logged, not asserted).
func TestClusterCrossNode(t *testing.T) {
	c := clustertest.NewCluster(t, binPath)
	c.StartSaver()
	c.StartDispatch()
	nodes := c.StartNodes(3)
	listed, err := c.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	url := map[string]string{}
	for _, n := range listed {
		url[n.NodeID] = n.WSURL
	}
	for _, p := range nodes {
		if url[p.ID] != p.WS {
			t.Fatalf("dispatcher lists %s at %q, the node says %q", p.ID, url[p.ID], p.WS)
		}
	}

	a := newAudit(t, nil)
	alice1 := a.device("alice", "d1", url[nodes[0].ID])
	bob := a.device("bob", "d1", url[nodes[1].ID])
	alice2 := a.device("alice", "d2", url[nodes[2].ID])

	want := map[string]int{nodes[0].ID: 1, nodes[2].ID: 1}
	clustertest.WaitState(t, 10*time.Second, "presence shows alice on nodes 1 and 3", func() (bool, string) {
		got, err := c.Presence("alice")
		return err == nil && maps.Equal(got, want), fmt.Sprint(got, err)
	})

	// alice → bob: ACK to the sending device, bob gets seq 1 of his inbox, alice's other
	// device seq 1 of hers.
	m1 := alice1.send("bob")
	clustertest.WaitFor(t, 10*time.Second, "alice's first message is acknowledged", func() bool { return m1.ackedID(a) != "" })
	id1 := m1.ackedID(a)
	clustertest.WaitFor(t, 10*time.Second, "bob and alice's second device get it", func() bool {
		_, b := bob.has(id1)
		_, a2 := alice2.has(id1)
		return b && a2
	})
	if s, _ := bob.has(id1); s != 1 {
		t.Errorf("bob got the first message with seq %d, want 1", s)
	}
	if s, _ := alice2.has(id1); s != 1 {
		t.Errorf("alice's second device got her first message with seq %d, want 1", s)
	}

	// bob → alice reaches both of alice's devices with her seq 2.
	m2 := bob.send("alice")
	clustertest.WaitFor(t, 10*time.Second, "bob's message is acknowledged", func() bool { return m2.ackedID(a) != "" })
	id2 := m2.ackedID(a)
	clustertest.WaitFor(t, 10*time.Second, "both alice devices get bob's message", func() bool {
		_, x := alice1.has(id2)
		_, y := alice2.has(id2)
		return x && y
	})
	for _, d := range []*auditDevice{alice1, alice2} {
		if s, _ := d.has(id2); s != 2 {
			t.Errorf("alice/%s got bob's message with seq %d, want 2", d.name, s)
		}
	}

	// bob's SIGNED receipt for alice's message crosses to both her nodes.
	if err := bob.sendJSON(map[string]any{"chatMsg": map[string]any{
		"senderId": "bob", "receiverId": "alice", "msgType": 8, "msgId": id1,
	}}); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, 10*time.Second, "both alice devices get bob's receipt", func() bool {
		return alice1.receiptCount(id1) > 0 && alice2.receiptCount(id1) > 0
	})

	// Steady cross-node traffic for the latency.
	bob.a.mu.Lock()
	bob.lat, alice2.lat = nil, nil
	bob.a.mu.Unlock()
	<-a.steady(5*time.Second, 100, []*auditDevice{alice1}, func(*auditDevice) string { return "bob" })
	rep := a.verify(t, 20*time.Second)
	a.mu.Lock()
	bl, al := bob.lat, alice2.lat
	for _, m := range a.msgs {
		if _, ok := alice1.seen[m.msgID]; ok && m.from == alice1 {
			t.Errorf("alice's sending device got its own message %s live", m.msgID)
		}
	}
	a.mu.Unlock()
	t.Logf("cross-node latency alice(node1)→bob(node2), %d msgs at 100/s: p50 %v p99 %v max %v",
		len(bl), percentile(bl, 50), percentile(bl, 99), percentile(bl, 100))
	t.Logf("to alice's other device (node3), %d msgs: p50 %v p99 %v max %v",
		len(al), percentile(al, 50), percentile(al, 99), percentile(al, 100))
	t.Logf("audit: sent %d, acked %d, resends %d, duplicates dropped %d", rep.sent, rep.acked, rep.resends, rep.dups)
	a.checkReplay(t, "bob", url[nodes[2].ID])
	a.checkReplay(t, "alice", url[nodes[1].ID])
	a.checkStore(t, c)

	// A graceful stop of a node with clients: they get 1001, its znode and port claim go,
	// and it exits with status 0.
	p := nodes[1]
	erin, _, _ := dialUser(t, p.WS, "erin", -1)
	clustertest.WaitFor(t, 10*time.Second, "presence shows erin", func() bool {
		got, _ := c.Presence("erin")
		return got[p.ID] == 1
	})
	p.Signal(syscall.SIGTERM)
	_ = erin.c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, _, err := erin.c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("SIGTERM: want close 1001, got %v", err)
	}
	select {
	case <-p.Exited():
	case <-time.After(15 * time.Second):
		t.Fatal("node did not exit within 15s of SIGTERM")
	}
	if p.Err != nil {
		t.Errorf("node exit after SIGTERM: %v, want status 0:\n%s", p.Err, p.Tail(8))
	}
	if _, ok := c.ServerList()[p.ID]; ok {
		t.Errorf("znode %s still there after a graceful stop", p.ID)
	}
	if owner, ok := c.PortClaims()["127.0.0.1:"+strconv.Itoa(p.Port)]; ok {
		t.Errorf("port %d still claimed by %s after a graceful stop", p.Port, owner)
	}
}
