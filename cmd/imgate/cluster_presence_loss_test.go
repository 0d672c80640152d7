package main

import (
	"context"
	"testing"
	"time"

	"imgate/cluster/clustertest"
)

// TestClusterPresenceLossCatchUp: with routed delivery, a message to a user whose node's
// presence is gone from Redis (a Redis restart; here the namespace's keys are deleted)
// is routed only to the sender's node. No later message reveals the hole, yet the
// receiving device, still connected, gets it: the node notices the loss, writes its
// presence again and catches its users up from the store.
func TestClusterPresenceLossCatchUp(t *testing.T) {
	c := clustertest.NewCluster(t, binPath)
	c.Delivery = "routed"
	c.StartSaver()
	c.StartDispatch()
	nodes := c.StartNodes(2)
	url := nodeURLs(t, c)

	a := newAudit(t, nil)
	alice := a.device("alice", "d1", url[nodes[0].ID])
	bob := a.device("bob", "d1", url[nodes[1].ID])
	first := bob.send("alice")
	clustertest.WaitFor(t, 10*time.Second, "a first message is acknowledged", func() bool { return first.ackedID(a) != "" })

	ctx := context.Background()
	keys, err := c.Svc.Redis.Keys(ctx, c.NS+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		if err := c.Svc.Redis.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("deleted %d presence and port keys", len(keys))
	lost := bob.send("alice") // routed while alice's presence is missing
	rep := a.verify(t, 20*time.Second)
	if _, ok := alice.has(lost.ackedID(a)); !ok {
		t.Fatal("alice never received the message sent while her presence was missing")
	}
	t.Logf("audit: sent %d, acked %d, resent %d", rep.sent, rep.acked, rep.resends)
}
