//go:build brokerrestart

package main

// This test stops and starts the shared RabbitMQ: run it alone, after the other tests
// (make test runs it in a separate sequential step):
//
//	go test -race -tags brokerrestart -run TestClusterBrokerRestart ./cmd/imgate/

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"imgate/cluster/clustertest"
)

// rabbitmqctl runs rabbitmqctl with args, bounded by 60 s.
func rabbitmqctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestClusterBrokerRestart runs the broker outage scenario with the real broker:
// rabbitmqctl stop_app, then start_app and await_startup.
func TestClusterBrokerRestart(t *testing.T) {
	c := clustertest.NewCluster(t, binPath)
	if out, err := rabbitmqctl("await_startup"); err != nil {
		t.Fatalf("rabbitmqctl await_startup: %v: %s (run scripts/services.sh up)", err, out)
	}
	started := true
	start := func() {
		if out, err := rabbitmqctl("start_app"); err != nil {
			t.Errorf("rabbitmqctl start_app: %v: %s", err, out)
		}
		if out, err := rabbitmqctl("await_startup"); err != nil {
			t.Errorf("rabbitmqctl await_startup: %v: %s", err, out)
		}
		started = true
	}
	// Registered after the cluster's cleanup, so it runs first: the broker is back before
	// the namespace's queues and exchanges are deleted.
	t.Cleanup(func() {
		if !started {
			start()
		}
	})
	brokerOutage(t, c, func() {
		started = false
		if out, err := rabbitmqctl("stop_app"); err != nil {
			t.Errorf("rabbitmqctl stop_app: %v: %s", err, out)
		}
	}, start)
}

// TestClusterBrokerRestartCatchesUpDroppedDeliveries: the bus's messages are transient,
// so persisted messages waiting in a node's queue are gone after a broker restart. The
// node catches its bound users up from the store when its connection comes back
// (NodeBus.Reconnected → server.Server.CatchUp): bob, connected throughout, still gets
// the messages alice sent while his node was cut off from the broker, although nothing
// is sent after them that would reveal the hole.
func TestClusterBrokerRestartCatchesUpDroppedDeliveries(t *testing.T) {
	c := clustertest.NewCluster(t, binPath)
	if out, err := rabbitmqctl("await_startup"); err != nil {
		t.Fatalf("rabbitmqctl await_startup: %v: %s (run scripts/services.sh up)", err, out)
	}
	c.StartSaver()
	c.StartDispatch()
	aliceNode := c.StartNode(1)
	// Bob's node reaches the broker through a proxy the test cuts.
	proxy, proxied := amqpProxy(t)
	c.AMQPURL = proxied
	bobNode := c.StartNode(2)
	c.WaitListed(aliceNode.ID, bobNode.ID)
	url := nodeURLs(t, c)
	a := newAudit(t, pickFrom(c))
	alice := a.device("alice", "d1", url[aliceNode.ID])
	bob := a.device("bob", "d1", url[bobNode.ID])
	first := alice.send("bob")
	clustertest.WaitFor(t, 10*time.Second, "bob gets the first message live", func() bool {
		_, ok := bob.has(first.ackedID(a))
		return first.ackedID(a) != "" && ok
	})

	// Cut off, bob's node does not read its queue: what alice sends now is acknowledged
	// through her node and waits in bob's node queue, which the restart then empties.
	proxy.Cut()
	var sent []*auditMsg
	for range 3 {
		sent = append(sent, alice.send("bob"))
	}
	clustertest.WaitFor(t, 10*time.Second, "alice's messages acknowledged", func() bool {
		for _, m := range sent {
			if m.ackedID(a) == "" {
				return false
			}
		}
		return true
	})
	for _, args := range [][]string{{"stop_app"}, {"start_app"}, {"await_startup"}} {
		if out, err := rabbitmqctl(args...); err != nil {
			t.Fatalf("rabbitmqctl %s: %v: %s", args[0], err, out)
		}
	}
	proxy.Heal()
	clustertest.WaitFor(t, 30*time.Second, "bob gets every message the broker dropped", func() bool {
		for _, m := range sent {
			if _, ok := bob.has(m.ackedID(a)); !ok {
				return false
			}
		}
		return true
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	if bob.reconnects > 0 {
		t.Errorf("bob reconnected %d times: the messages came by replay, not by the node's catch-up", bob.reconnects)
	}
}
