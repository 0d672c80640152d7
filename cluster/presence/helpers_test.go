package presence

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"imgate/cluster/clustertest"
)

// resync replaces this node's entries in Redis with snapshot, which also becomes
// the local count. Entries of users absent from snapshot are deleted.
func (p *Tracker) resync(ctx context.Context, snapshot map[string]int) error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	p.mu.Lock()
	clear(p.counts)
	for u, n := range snapshot {
		if n > 0 {
			p.counts[u] = n
		}
	}
	p.mu.Unlock()
	return p.resyncLocked(ctx)
}

// pending returns how many users have changes not yet written.
func (p *Tracker) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.dirty)
}

func presenceTestRedis(t *testing.T) (*redis.Client, string) { return clustertest.Redis(t) }
