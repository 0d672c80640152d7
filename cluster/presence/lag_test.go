package presence

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"imgate/cluster/clustertest"
)

// TestPresenceWriteLag: the lag is 0 once every change is written, grows while Redis is
// cut off (the change waits, failed writes put it back), and returns to 0 after the
// write that follows the heal.
func TestPresenceWriteLag(t *testing.T) {
	_, prefix := presenceTestRedis(t)
	proxy := clustertest.NewProxy(t, clustertest.RedisAddr())
	pc := redis.NewClient(&redis.Options{Addr: proxy.Addr(), DialTimeout: time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = pc.Close() })
	p := presenceNew(t, pc, prefix, "im-7", 1, 10*time.Millisecond)
	p.Connected("u")
	presenceWant(t, p, "u", map[string]int{"im-7": 1})
	clustertest.WaitFor(t, 5*time.Second, "no lag once written", func() bool { return p.WriteLag() == 0 })

	proxy.Cut()
	p.Connected("u")
	clustertest.WaitFor(t, 5*time.Second, "a write error", func() bool { return p.State() != nil })
	clustertest.WaitFor(t, 5*time.Second, "the lag to pass 100ms", func() bool { return p.WriteLag() > 100*time.Millisecond })
	proxy.Heal()
	presenceWant(t, p, "u", map[string]int{"im-7": 2})
	clustertest.WaitFor(t, 5*time.Second, "no lag after the heal", func() bool { return p.WriteLag() == 0 })
}
