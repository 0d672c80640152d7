package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
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

// TestClusterZKOutageHealth cuts a node and a dispatcher off ZooKeeper (through a proxy):
// their /healthz stay 200 and /readyz says "degraded" with the zookeeper check failing,
// while the dispatcher keeps picking the node, which still serves. A load balancer
// that trusts /healthz keeps the cluster in.
func TestClusterZKOutageHealth(t *testing.T) {
	c := clustertest.NewCluster(t, binPath)
	proxy := clustertest.NewProxy(t, clustertest.ZKAddr())
	viaProxy := func(args []string) []string {
		args[slices.Index(args, "--zk")+1] = proxy.Addr()
		return args
	}
	disp := c.Add(clustertest.Start(t, binPath, "dispatch", true, viaProxy(c.DispatchArgs())...))
	node := c.Add(clustertest.Start(t, binPath, "node1", true, viaProxy(c.NodeArgs(1))...))
	pick := func() (string, error) {
		var r struct {
			Data *struct {
				NodeID string `json:"nodeId"`
			} `json:"data"`
		}
		resp, err := http.Get(disp.HTTP + "/api/v1/nodes/pick?userId=u")
		if err != nil {
			return "", err
		}
		defer func() { _ = resp.Body.Close() }()
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Data == nil {
			return "", fmt.Errorf("pick: %d %v", resp.StatusCode, err)
		}
		return r.Data.NodeID, nil
	}
	clustertest.WaitFor(t, 15*time.Second, "the dispatcher picks the node", func() bool { id, _ := pick(); return id == node.ID })

	proxy.Cut()
	for _, base := range []string{disp.HTTP, node.Health} {
		clustertest.WaitState(t, 15*time.Second, base+"/readyz is 200 degraded with zookeeper failing", func() (bool, string) {
			st, checks := clustertest.Health(base)
			return st == 200 && checks["zookeeper"] != "ok" && checks["zookeeper"] != "", fmt.Sprint(st, checks)
		})
		if st, checks := clustertest.Live(base); st != 200 {
			t.Fatalf("%s/healthz with ZooKeeper away: %d %v", base, st, checks)
		}
	}
	if id, err := pick(); id != node.ID {
		t.Fatalf("pick with ZooKeeper away: %q %v", id, err)
	}
	proxy.Heal()
}
