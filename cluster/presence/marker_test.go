package presence

import (
	"context"
	"testing"
	"time"

	"imgate/cluster/clustertest"
)

// TestPresenceRemoveNodeDeletesMarker: removing an identity leaves no key of it behind
// but its fence.
func TestPresenceRemoveNodeDeletesMarker(t *testing.T) {
	client, prefix := presenceTestRedis(t)
	p := presenceNew(t, client, prefix, "im-0000000007", 7, 0)
	p.Connected("alice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	marker := prefix + "node:im-0000000007:marker"
	clustertest.WaitFor(t, 5*time.Second, "the first resync to write the marker", func() bool {
		n, err := client.Exists(ctx, marker).Result()
		return err == nil && n == 1
	})
	if err := p.RemoveNode(ctx, "im-0000000007", 7); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Exists(ctx, marker, prefix+"node:im-0000000007:users", prefix+"presence:alice").Result(); err != nil || n != 0 {
		t.Fatalf("%d keys of the removed identity left (err %v)", n, err)
	}
}
