package bus

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// The server API's bus announces a group change and returns once every node named has
// dropped the group from its cache: the change applies to the next message there.
func TestBusGroupChangeWaitsForEveryNode(t *testing.T) {
	cfg, _ := busTestConfig(t)
	qa, qb, qapi := cfg.NodeQueue("127.0.0.1", 41), cfg.NodeQueue("127.0.0.1", 42), cfg.NodeQueue("127.0.0.1", 43)
	t.Cleanup(func() { busDeleteQueues(t, qa, qb, qapi) })
	sa, sb := newBusSink(), newBusSink()
	busNode(t, cfg, qa, sa) // node ids are the queue names here (busNode)
	busNode(t, cfg, qb, sb)
	api, err := NewNodeBus(cfg, qapi, qapi)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Close() })
	api.Start(newBusSink(), nil) // the API caches no groups
	busReady(t, api.Ready)

	dropped := func(s *busSink, g string) bool {
		for _, ids := range s.invalidations() {
			if slices.Contains(ids, g) {
				return true
			}
		}
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := api.ChangeGroups(ctx, []string{"g1", "g2"}, []string{qa, qb}); err != nil {
		t.Fatal(err)
	}
	// ChangeGroups returned: both caches were told already, not eventually.
	for _, s := range []*busSink{sa, sb} {
		if !dropped(s, "g1") || !dropped(s, "g2") {
			t.Fatalf("a node answered before dropping the groups: %v", s.invalidations())
		}
	}

	// A node that is waited for and never answers (not there) is named at the deadline;
	// the nodes that are there still apply the change.
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	err = api.ChangeGroups(short, []string{"g3"}, []string{qa, "127.0.0.1_9"})
	if err == nil || !strings.Contains(err.Error(), "1 of 2 nodes [127.0.0.1_9]") {
		t.Fatalf("a missing node: err %v, want it named", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !dropped(sa, "g3") {
		if time.Now().After(deadline) {
			t.Fatal("node a never dropped g3")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
