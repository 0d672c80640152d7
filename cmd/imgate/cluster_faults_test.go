package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"imgate/cluster/clustertest"
)

// nodeURLs maps node IDs to the wsUrl the dispatcher lists.
func nodeURLs(t *testing.T, c *clustertest.Cluster) map[string]string {
	t.Helper()
	listed, err := c.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	url := map[string]string{}
	for _, n := range listed {
		url[n.NodeID] = n.WSURL
	}
	return url
}

// ackedCount answers how many messages of a are acknowledged.
func (a *audit) ackedCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.msgs) - len(a.pending)
}

// TestClusterNodeKill9 kills a node that has clients with SIGKILL during steady traffic:
// its znode goes within the session timeout, the dispatcher stops listing and picking it,
// its users' presence and its port claim are cleaned up, and its clients reconnect
// elsewhere with their cursor and get every acknowledged message.
func TestClusterNodeKill9(t *testing.T) {
	c := clustertest.NewCluster(t, binPath)
	c.StartSaver()
	c.StartDispatch()
	nodes := c.StartNodes(3)
	victim, n2, n3 := nodes[0], nodes[1], nodes[2]
	url := nodeURLs(t, c)

	a := newAudit(t, pickFrom(c))
	alice1 := a.device("alice", "d1", url[victim.ID])
	bob1 := a.device("bob", "d1", url[victim.ID])
	alice2 := a.device("alice", "d2", url[n2.ID])
	carol := a.device("carol", "d1", url[n3.ID])
	clustertest.WaitState(t, 10*time.Second, "presence shows alice and bob on the victim", func() (bool, string) {
		pa, _ := c.Presence("alice")
		pb, _ := c.Presence("bob")
		return pa[victim.ID] == 1 && pb[victim.ID] == 1, fmt.Sprint(pa, pb)
	})
	if c.PortClaims()["127.0.0.1:"+strconv.Itoa(victim.Port)] == "" {
		t.Fatalf("the victim's port %d is not claimed in %s:ports: %v", victim.Port, c.NS, c.PortClaims())
	}

	next := map[string]string{"alice": "bob", "bob": "carol", "carol": "alice"}
	done := a.steady(4*time.Second, 20, []*auditDevice{alice1, bob1, alice2, carol}, func(d *auditDevice) string { return next[d.user] })
	clustertest.WaitFor(t, 10*time.Second, "traffic flows (40 messages acknowledged)", func() bool { return a.ackedCount() >= 40 })

	victim.Kill9(t)
	killed := time.Now()
	gone := clustertest.WaitFor(t, 10*time.Second, "the victim's znode is gone", func() bool {
		_, ok := c.ServerList()[victim.ID]
		return !ok
	})
	t.Logf("znode %s gone %v after SIGKILL (session timeout 2s)", victim.ID, gone.Round(time.Millisecond))
	c.WaitListed(n2.ID, n3.ID)
	t.Logf("dispatcher lists 2 nodes %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	for i := range 20 {
		n, err := c.Pick("user" + strconv.Itoa(i))
		if err != nil || n.NodeID == victim.ID || n.Port == victim.Port {
			t.Fatalf("pick after the kill: %+v, %v", n, err)
		}
	}
	field := "127.0.0.1:" + strconv.Itoa(victim.Port)
	clustertest.WaitState(t, 10*time.Second, "the victim's port claim is released", func() (bool, string) {
		m := c.PortClaims()
		_, held := m[field]
		return !held, fmt.Sprint(m)
	})
	clustertest.WaitState(t, 10*time.Second, "the victim's users leave presence (API and Redis)", func() (bool, string) {
		state := ""
		for _, u := range []string{"alice", "bob"} {
			p, err := c.Presence(u)
			if err != nil || p[victim.ID] != 0 {
				return false, fmt.Sprint(u, p, err)
			}
			v, err := c.Svc.Redis.HGet(context.Background(), c.NS+":presence:"+u, victim.ID).Result()
			if !errors.Is(err, redis.Nil) {
				return false, fmt.Sprintf("redis %s:presence:%s %s = %q (%v)", c.NS, u, victim.ID, v, err)
			}
		}
		return true, state
	})
	clustertest.WaitFor(t, 15*time.Second, "the victim's clients reconnect elsewhere", func() bool {
		u1, u2 := alice1.connectedURL(), bob1.connectedURL()
		return u1 != "" && u2 != "" && u1 != victim.WS && u2 != victim.WS
	})
	t.Logf("victim's clients reconnected %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	a.mu.Lock()
	for _, d := range []*auditDevice{alice1, bob1} {
		for _, r := range d.replays[1:] {
			t.Logf("%s/%s reconnected to %s with cursor %d: init ACK seq %d, %d messages before it", d.user, d.name, d.url, r.cursor, r.ack, len(r.seqs))
		}
	}
	a.mu.Unlock()
	<-done
	rep := a.verify(t, 20*time.Second)
	t.Logf("audit: sent %d, acked %d, resent %d, ERROR unavailable %d, duplicates dropped %d, reconnects %d",
		rep.sent, rep.acked, rep.resends, rep.unavailable, rep.dups, rep.reconnects)
	for _, u := range []string{"alice", "bob", "carol"} {
		a.checkReplay(t, u, url[n2.ID])
	}
	a.checkStore(t, c)
}

// TestClusterSaverKill kills the saver with SIGKILL during steady traffic from several
// clients and restarts it about a second later: every acknowledged message reaches every
// device of its receiver and sender, in seq order, and PostgreSQL holds each once.
func TestClusterSaverKill(t *testing.T) {
	c := clustertest.NewCluster(t, binPath)
	saver := c.StartSaver()
	c.StartDispatch()
	nodes := c.StartNodes(2)
	url := nodeURLs(t, c)
	u1, u2 := url[nodes[0].ID], url[nodes[1].ID]

	a := newAudit(t, pickFrom(c))
	a.resendAfter = 700 * time.Millisecond // resend while the saver is down: the store must drop the copies
	devs := []*auditDevice{
		a.device("u0", "d1", u1), a.device("u0", "d2", u2),
		a.device("u1", "d1", u2), a.device("u1", "d2", u1),
		a.device("u2", "d1", u1), a.device("u3", "d1", u2),
	}
	next := map[string]string{"u0": "u1", "u1": "u2", "u2": "u3", "u3": "u0"}
	done := a.steady(5*time.Second, 15, devs, func(d *auditDevice) string { return next[d.user] })
	clustertest.WaitFor(t, 10*time.Second, "traffic flows (60 messages acknowledged)", func() bool { return a.ackedCount() >= 60 })

	saver.Kill9(t)
	killed := time.Now()
	ackedAtKill := a.ackedCount()
	time.Sleep(time.Second) // the scenario: the saver stays down for a second
	c.StartSaver()
	t.Logf("saver restarted %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	<-done
	rep := a.verify(t, 25*time.Second)
	t.Logf("audit: sent %d, acked %d (%d at the kill), resent %d, ERROR unavailable %d, duplicates dropped %d",
		rep.sent, rep.acked, ackedAtKill, rep.resends, rep.unavailable, rep.dups)
	for _, u := range []string{"u0", "u1", "u2", "u3"} {
		a.checkReplay(t, u, u1)
	}
	a.checkStore(t, c)
}

// TestClusterZKExpiry stops a node (SIGSTOP) until ZooKeeper expires its session, then
// resumes it: it registers again under a new znode with its address, its clients keep
// working, and the dispatcher lists it again.
func TestClusterZKExpiry(t *testing.T) {
	c := clustertest.NewCluster(t, binPath)
	c.StartSaver()
	c.StartDispatch()
	nodes := c.StartNodes(2)
	sleeper, other := nodes[0], nodes[1]
	url := nodeURLs(t, c)

	a := newAudit(t, nil) // no reconnects: the sleeper's clients must keep their connection
	alice := a.device("alice", "d1", url[sleeper.ID])
	bob := a.device("bob", "d1", url[other.ID])
	m := alice.send("bob")
	clustertest.WaitFor(t, 10*time.Second, "a message before the pause is acknowledged", func() bool { return m.ackedID(a) != "" })

	sleeper.Signal(syscall.SIGSTOP)
	stopped := time.Now()
	gone := clustertest.WaitFor(t, 15*time.Second, "the stopped node's znode expires", func() bool {
		_, ok := c.ServerList()[sleeper.ID]
		return !ok
	})
	t.Logf("znode %s expired %v after SIGSTOP (session timeout 2s)", sleeper.ID, gone.Round(time.Millisecond))
	c.WaitListed(other.ID)
	// Messages to the stopped node's user wait in its queue.
	var during []*auditMsg
	for range 5 {
		during = append(during, bob.send("alice"))
	}
	clustertest.WaitFor(t, 10*time.Second, "bob's messages during the pause are acknowledged", func() bool {
		for _, m := range during {
			if m.ackedID(a) == "" {
				return false
			}
		}
		return true
	})
	if pause := 5*time.Second - time.Since(stopped); pause > 0 {
		time.Sleep(pause) // the scenario: stopped for ~5 s in all
	}
	sleeper.Signal(syscall.SIGCONT)
	resumed := time.Now()

	var newID string
	clustertest.WaitState(t, 15*time.Second, "the resumed node registers again with its address", func() (bool, string) {
		list := c.ServerList()
		for id, d := range list {
			if id != other.ID && d["port"] == float64(sleeper.Port) && d["ip"] == "127.0.0.1" {
				newID = id
				return true, ""
			}
		}
		return false, fmt.Sprint(list)
	})
	if newID == sleeper.ID {
		t.Fatalf("re-registered under the old znode %s", newID)
	}
	if _, ok := c.ServerList()[sleeper.ID]; ok {
		t.Errorf("the old znode %s is back", sleeper.ID)
	}
	t.Logf("re-registered as %s %v after SIGCONT", newID, time.Since(resumed).Round(time.Millisecond))
	c.WaitListed(other.ID, newID)
	clustertest.WaitState(t, 10*time.Second, "the node's port is claimed again and alice is present on the new znode", func() (bool, string) {
		claims := c.PortClaims()
		p, err := c.Presence("alice")
		return claims["127.0.0.1:"+strconv.Itoa(sleeper.Port)] != "" && p[newID] == 1, fmt.Sprint(claims, p, err)
	})

	// The sleeper's client still works both ways, on the same connection.
	a.mu.Lock()
	gen := alice.gen
	a.mu.Unlock()
	m1 := alice.send("bob")
	m2 := bob.send("alice")
	rep := a.verify(t, 15*time.Second)
	a.mu.Lock()
	if alice.gen != gen || alice.reconnects != 0 {
		t.Errorf("alice's connection to the resumed node was replaced (gen %d→%d)", gen, alice.gen)
	}
	a.mu.Unlock()
	if m1.ackedID(a) == "" || m2.ackedID(a) == "" {
		t.Fatal("messages after the resume not acknowledged")
	}
	t.Logf("audit: sent %d, acked %d, resent %d", rep.sent, rep.acked, rep.resends)
}

// TestClusterTwoSaversKill runs two savers (as `make cluster` does) and kills the first,
// the active one (the save queue has a single active consumer), with SIGKILL during steady
// traffic, without restarting it: the broker makes the standby active and hands it the dead
// saver's unacknowledged batches as soon as its connection closes, every acknowledged
// message reaches every device in seq order, PostgreSQL holds each once, and the senders'
// longest wait for an ACK around the kill is logged (docs/operations.md).
func TestClusterTwoSaversKill(t *testing.T) {
	saverFault(t, "killed", 5*time.Second, func(victim *clustertest.Proc) { victim.Kill9(t) })
}

// TestClusterActiveSaverHangs stops the active saver with SIGSTOP during steady traffic:
// its connection stays open, so the broker keeps it active until it misses its AMQP
// heartbeats (--amqp-heartbeat, 2 s by default), then hands its batches to the standby.
// Nothing acknowledged is lost, and the senders' longest wait is logged: about two
// heartbeats (docs/operations.md, "How many savers").
func TestClusterActiveSaverHangs(t *testing.T) {
	saverFault(t, "stopped", 10*time.Second, func(victim *clustertest.Proc) {
		victim.Signal(syscall.SIGSTOP)
		t.Cleanup(func() { victim.Signal(syscall.SIGCONT) })
	})
}

// saverFault runs two savers, two nodes and six devices in steady traffic for d, applies
// fault to the first (active) saver once traffic flows, and audits the run.
func saverFault(t *testing.T, what string, d time.Duration, fault func(victim *clustertest.Proc)) {
	c := clustertest.NewCluster(t, binPath)
	victim := c.StartSaver()
	c.StartSaver()
	c.StartDispatch()
	nodes := c.StartNodes(2)
	url := nodeURLs(t, c)
	u1, u2 := url[nodes[0].ID], url[nodes[1].ID]

	a := newAudit(t, pickFrom(c))
	a.resendAfter = 700 * time.Millisecond
	devs := []*auditDevice{
		a.device("u0", "d1", u1), a.device("u0", "d2", u2),
		a.device("u1", "d1", u2), a.device("u1", "d2", u1),
		a.device("u2", "d1", u1), a.device("u3", "d1", u2),
	}
	next := map[string]string{"u0": "u1", "u1": "u2", "u2": "u3", "u3": "u0"}
	started := time.Now()
	done := a.steady(d, 15, devs, func(d *auditDevice) string { return next[d.user] })
	clustertest.WaitFor(t, 10*time.Second, "traffic flows (60 messages acknowledged)", func() bool { return a.ackedCount() >= 60 })

	fault(victim)
	at := time.Now()
	<-done
	rep := a.verify(t, 25*time.Second)
	// The longest wait for an ACK among messages acknowledged before the fault (what this
	// machine gives without one) and among those in flight at it or sent after.
	var before, after time.Duration
	a.mu.Lock()
	for m := range maps.Values(a.msgs) {
		switch {
		case m.acked.IsZero():
		case m.acked.Before(at):
			before = max(before, m.acked.Sub(m.first))
		default:
			after = max(after, m.acked.Sub(m.first))
		}
	}
	a.mu.Unlock()
	t.Logf("the active one of two savers %s %v into the traffic: longest wait for an ACK %v before, %v for messages in flight at it or sent after; audit: sent %d, acked %d, resent %d, ERROR unavailable %d",
		what, at.Sub(started).Round(time.Millisecond), before.Round(time.Millisecond), after.Round(time.Millisecond), rep.sent, rep.acked, rep.resends, rep.unavailable)
	for _, u := range []string{"u0", "u1", "u2", "u3"} {
		a.checkReplay(t, u, u1)
	}
	a.checkStore(t, c)
}
