package main

import (
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"imgate/cluster/clustertest"
)

// TestClusterRollingRestart restarts the three nodes of a cluster one after the other
// under steady traffic, the way docs/deploy.md says to upgrade: `imgate drain` (the node
// leaves the pick, its clients get 1001 over the window and reconnect elsewhere through
// the dispatcher), then SIGTERM, then a new node. No acknowledged message may be lost or
// duplicated, and no pick may answer a draining node.
func TestClusterRollingRestart(t *testing.T) {
	c, disp, nodes, keyFile := startAdminCluster(t, 3)

	a := newAudit(t, pickFrom(c))
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	var devs, senders []*auditDevice
	for i, u := range users {
		for d := range 2 { // two devices each, on different nodes
			devs = append(devs, a.device(u, "d"+strconv.Itoa(d), nodes[(i+d)%3].WS))
		}
		senders = append(senders, devs[len(devs)-2])
	}
	next := map[string]string{}
	for i, u := range users {
		next[u] = users[(i+1)%len(users)]
	}
	stopTraffic := make(chan struct{})
	trafficDone := make(chan struct{})
	go func() { // about 5 messages a second per user until the restarts are over
		defer close(trafficDone)
		for {
			// Each round runs to its end: no message may be sent after trafficDone, or
			// the audit would check the store while it is still being written.
			<-a.steady(time.Second, 5, senders, func(d *auditDevice) string { return next[d.user] })
			select {
			case <-stopTraffic:
				return
			default:
			}
		}
	}()
	clustertest.WaitFor(t, 10*time.Second, "traffic flows (30 messages acknowledged)", func() bool { return a.ackedCount() >= 30 })

	live := []string{nodes[0].ID, nodes[1].ID, nodes[2].ID}
	for i, old := range nodes {
		asked := time.Now()
		out, err := runBin(t, "drain", "--dispatcher", disp.HTTP, "--node-id", old.ID, "--api-key-file", keyFile)
		if err != nil {
			t.Fatalf("imgate drain %s: %v\n%s", old.ID, err, out)
		}
		drained := time.Now()
		clustertest.WaitState(t, 10*time.Second, old.ID+" listed as draining", func() (bool, string) {
			ns, err := c.Nodes()
			for _, n := range ns {
				if n.NodeID == old.ID {
					return n.Draining, fmt.Sprint(n)
				}
			}
			return false, fmt.Sprint(ns, err)
		})
		for j := range 10 {
			if n, err := c.Pick("probe" + strconv.Itoa(j)); err != nil || n.NodeID == old.ID {
				t.Fatalf("pick while %s drains: %+v, %v", old.ID, n, err)
			}
		}
		clustertest.WaitState(t, 15*time.Second, old.ID+" has no client left", func() (bool, string) {
			ns, _ := c.Nodes()
			for _, n := range ns {
				if n.NodeID == old.ID {
					return n.OnlineCounts == 0, fmt.Sprint(n)
				}
			}
			return false, "not listed"
		})
		t.Logf("%s drained %v after imgate drain started (%v after it returned)", old.ID,
			time.Since(asked).Round(time.Millisecond), time.Since(drained).Round(time.Millisecond))
		old.Signal(syscall.SIGTERM)
		select {
		case <-old.Exited():
		case <-time.After(15 * time.Second):
			t.Fatalf("%s did not exit within 15s of SIGTERM after its drain", old.ID)
		}
		if old.Err != nil {
			t.Errorf("%s exit after drain and SIGTERM: %v, want status 0", old.ID, old.Err)
		}
		fresh := c.StartNode(10 + i)
		live[i] = fresh.ID
		c.WaitListed(live...)
		clustertest.WaitFor(t, 10*time.Second, "traffic flows after restarting "+old.ID, func() bool {
			return a.ackedCount() >= 30*(i+2)
		})
	}
	close(stopTraffic)
	<-trafficDone
	rep := a.verify(t, 30*time.Second)
	t.Logf("audit: sent %d, acked %d, resent %d, ERROR unavailable %d, duplicates dropped %d, reconnects %d",
		rep.sent, rep.acked, rep.resends, rep.unavailable, rep.dups, rep.reconnects)
	if rep.reconnects < len(devs) {
		t.Errorf("%d reconnects for %d devices over three node restarts: the drains did not move the clients", rep.reconnects, len(devs))
	}
	a.checkStore(t, c)
}
