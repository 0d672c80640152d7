package main

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"imgate/cluster/clustertest"
)

// TestClusterDeadNodeLeavesPicks kills a node with SIGKILL whose ZooKeeper session
// lasts 20 s: the dispatcher's own probes take it out of the picks and the node list
// long before the session expires (its znode is still there when they do).
func TestClusterDeadNodeLeavesPicks(t *testing.T) {
	c := clustertest.NewCluster(t, binPath)
	c.StartDispatch()
	var nodes []*clustertest.Proc
	for i := 1; i <= 3; i++ {
		args := append(c.NodeArgs(i), "--zk-session-timeout", "20s") // the last value wins
		nodes = append(nodes, c.Add(clustertest.Start(t, binPath, "node"+strconv.Itoa(i), true, args...)))
	}
	c.WaitListed(nodes[0].ID, nodes[1].ID, nodes[2].ID)
	victim := nodes[1]
	// With no clients the picks go round the three nodes: the victim is among any three.
	seen := map[string]bool{}
	for i := range 3 {
		n, err := c.Pick("u" + strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		seen[n.NodeID] = true
	}
	if !seen[victim.ID] {
		t.Fatalf("three picks before the kill did not include the victim %s: %v", victim.ID, seen)
	}

	victim.Kill9(t)
	killed := time.Now()
	clean := 0
	var firstClean time.Time // the first pick of the final run without the victim
	clustertest.WaitState(t, 8*time.Second, "30 picks in a row avoid the killed node", func() (bool, string) {
		n, err := c.Pick("u")
		if err != nil {
			return false, err.Error()
		}
		if n.NodeID == victim.ID {
			clean = 0
			return false, "picked the victim"
		}
		if clean == 0 {
			firstClean = time.Now()
		}
		clean++
		return clean >= 30, fmt.Sprint(clean, " clean picks")
	})
	out := firstClean.Sub(killed)
	if _, ok := c.ServerList()[victim.ID]; !ok {
		t.Fatalf("the victim's znode vanished within %v: its 20 s session, not the probes, took it out", out)
	}
	t.Logf("the killed node left the picks %v after SIGKILL (its znode still registered)", out.Round(time.Millisecond))
	c.WaitListed(nodes[0].ID, nodes[2].ID)
}
