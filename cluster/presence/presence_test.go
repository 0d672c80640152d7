package presence

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"imgate/cluster/clustertest"
)

func presenceNew(t *testing.T, c *redis.Client, prefix, node string, epoch int64, flush time.Duration) *Tracker {
	t.Helper()
	p, err := New(c, node, epoch, Config{Prefix: prefix, FlushInterval: flush})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func presenceWant(t *testing.T, p presenceAPI, user string, want map[string]int) {
	t.Helper()
	var got map[string]int
	clustertest.WaitFor(t, 5*time.Second, "presence of "+user, func() bool {
		var err error
		got, err = p.Lookup(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		return maps.Equal(got, want)
	})
}

func TestPresenceRedisConnectedDisconnected(t *testing.T) {
	c, prefix := presenceTestRedis(t)
	a := presenceNew(t, c, prefix, "im-1", 1, 0)
	b := presenceNew(t, c, prefix, "im-2", 2, 0)
	a.Connected("u")
	a.Connected("u")
	b.Connected("u")
	presenceWant(t, a, "u", map[string]int{"im-1": 2, "im-2": 1})
	if v := c.HGet(context.Background(), prefix+"presence:u", "im-1").Val(); v != "1:2" {
		t.Errorf("field = %q, want epoch:devices 1:2", v)
	}
	a.Disconnected("u")
	a.Disconnected("u")
	presenceWant(t, b, "u", map[string]int{"im-2": 1})
	b.Disconnected("u")
	presenceWant(t, b, "u", map[string]int{})
	if n := c.Exists(context.Background(), prefix+"presence:u", prefix+"node:im-1:users").Val(); n != 0 {
		t.Errorf("%d keys left for an offline user", n)
	}
}

// TestPresenceRedisFencing: RemoveNode drops only entries with an epoch <= its
// own and fences them: the removed registration cannot write again.
func TestPresenceRedisFencing(t *testing.T) {
	ctx := context.Background()
	c, prefix := presenceTestRedis(t)
	old := presenceNew(t, c, prefix, "im-7", 5, 0)
	for _, u := range []string{"u1", "u2", "u3"} {
		old.Connected(u)
	}
	presenceWant(t, old, "u3", map[string]int{"im-7": 1})

	// An older epoch does not remove a newer registration's entries.
	if err := old.RemoveNode(ctx, "im-7", 4); err != nil {
		t.Fatal(err)
	}
	presenceWant(t, old, "u1", map[string]int{"im-7": 1})

	if err := old.RemoveNode(ctx, "im-7", 5); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"u1", "u2", "u3"} {
		presenceWant(t, old, u, map[string]int{})
	}
	// The paused node resumes: its writes are refused.
	old.Connected("u4")
	clustertest.WaitFor(t, 5*time.Second, "fenced", func() bool { return errors.Is(old.State(), ErrFenced) })
	presenceWant(t, old, "u4", map[string]int{})
	if err := old.resync(ctx, map[string]int{"u5": 1}); !errors.Is(err, ErrFenced) {
		t.Errorf("resync of a fenced registration = %v, want ErrFenced", err)
	}

	// After registering again (a higher epoch) it writes again, with all its users
	// (resync made {u5: 1} the local truth).
	old.SetIdentity("im-9", 6)
	presenceWant(t, old, "u5", map[string]int{"im-9": 1})
	presenceWant(t, old, "u4", map[string]int{})
	if err := old.State(); err != nil {
		t.Errorf("State after SetIdentity = %v", err)
	}
}

// TestPresenceRedisCoalesces: between flushes, changes of one user collapse into
// its latest count; the pending set holds each user once.
func TestPresenceRedisCoalesces(t *testing.T) {
	ctx := context.Background()
	c, prefix := presenceTestRedis(t)
	p := presenceNew(t, c, prefix, "im-3", 1, time.Hour)
	if err := p.Flush(ctx); err != nil { // the initial resync
		t.Fatal(err)
	}
	for i := range 10_000 {
		p.Connected("hot")
		if i%2 == 1 {
			p.Disconnected("hot")
		}
		p.Connected("cold")
		p.Disconnected("cold")
	}
	p.Connected("x")
	if n := p.pending(); n != 3 {
		t.Fatalf("pending = %d, want 3 (one per user)", n)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if p.pending() != 0 {
		t.Errorf("pending after flush = %d", p.pending())
	}
	presenceWant(t, p, "hot", map[string]int{"im-3": 5000})
	presenceWant(t, p, "cold", map[string]int{})
	presenceWant(t, p, "x", map[string]int{"im-3": 1})
}

// TestPresenceRedisFailedWritesStayPending: while Redis does not answer, changes
// stay pending (coalesced) and are written once it answers again.
func TestPresenceRedisFailedWritesStayPending(t *testing.T) {
	c, prefix := presenceTestRedis(t)
	proxy := clustertest.NewProxy(t, clustertest.RedisAddr())
	pc := redis.NewClient(&redis.Options{Addr: proxy.Addr(), DialTimeout: time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = pc.Close() })
	p := presenceNew(t, pc, prefix, "im-4", 1, 10*time.Millisecond)
	p.Connected("u")
	presenceWant(t, p, "u", map[string]int{"im-4": 1})

	proxy.Cut()
	for range 100 {
		p.Connected("u")
	}
	clustertest.WaitFor(t, 5*time.Second, "a write error", func() bool { return p.State() != nil })
	if n := p.pending(); n > 1 { // 0 while a flush attempt holds it
		t.Errorf("pending while down = %d, want at most the one user", n)
	}
	if v := c.HGet(context.Background(), prefix+"presence:u", "im-4").Val(); v != "1:1" {
		t.Errorf("while down, Redis holds %q", v)
	}
	proxy.Heal()
	presenceWant(t, p, "u", map[string]int{"im-4": 101})
	clustertest.WaitFor(t, 5*time.Second, "healthy", func() bool { return p.State() == nil })
}

// TestPresenceRedisResync: resync replaces this node's entries, and a lost marker
// (Redis restarted empty) triggers an automatic resync from the local counts.
func TestPresenceRedisResync(t *testing.T) {
	ctx := context.Background()
	c, prefix := presenceTestRedis(t)
	p := presenceNew(t, c, prefix, "im-5", 3, 10*time.Millisecond)
	p.Connected("s1")
	p.Connected("s1")
	p.Connected("s2")
	presenceWant(t, p, "s1", map[string]int{"im-5": 2})
	p.Connected("stale")
	presenceWant(t, p, "stale", map[string]int{"im-5": 1})

	if err := p.resync(ctx, map[string]int{"s1": 2, "s2": 1}); err != nil {
		t.Fatal(err)
	}
	presenceWant(t, p, "stale", map[string]int{})
	presenceWant(t, p, "s1", map[string]int{"im-5": 2})

	// Simulate a Redis restart: everything under the prefix vanishes.
	keys := c.Keys(ctx, prefix+"*").Val()
	if len(keys) == 0 {
		t.Fatal("no keys written")
	}
	c.Del(ctx, keys...)
	presenceWant(t, p, "s1", map[string]int{})
	presenceWant(t, p, "s1", map[string]int{"im-5": 2}) // restored by the automatic resync
	presenceWant(t, p, "s2", map[string]int{"im-5": 1})
}

func TestPresenceMemory(t *testing.T) {
	ctx := context.Background()
	m := newMemoryPresence()
	m.SetIdentity("im-1", 4)
	m.Connected("u")
	m.Connected("u")
	presenceWant(t, m, "u", map[string]int{"im-1": 2})
	m.Disconnected("u")
	presenceWant(t, m, "u", map[string]int{"im-1": 1})
	if err := m.RemoveNode(ctx, "im-1", 3); err != nil {
		t.Fatal(err)
	}
	presenceWant(t, m, "u", map[string]int{"im-1": 1})
	if err := m.RemoveNode(ctx, "im-1", 4); err != nil {
		t.Fatal(err)
	}
	presenceWant(t, m, "u", map[string]int{})
	m.Connected("u")
	presenceWant(t, m, "u", map[string]int{}) // fenced
	m.SetIdentity("im-2", 5)
	if err := m.resync(ctx, map[string]int{"v": 3}); err != nil {
		t.Fatal(err)
	}
	got, _ := m.Lookup(ctx, "v")
	if !maps.Equal(got, map[string]int{"im-2": 3}) {
		t.Errorf("Lookup(v) = %v", got)
	}
}

// TestPresenceSyncWritesNow: Sync makes a Connected visible without waiting for the
// flush interval (an hour here), and fails at once when Redis cannot be written.
func TestPresenceSyncWritesNow(t *testing.T) {
	c, prefix := presenceTestRedis(t)
	p := presenceNew(t, c, prefix, "im-1", 1, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Sync(ctx); err != nil { // the first flush resyncs
		t.Fatal(err)
	}
	p.Connected("sync-u")
	if err := p.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := p.Lookup(ctx, "sync-u")
	if err != nil || got["im-1"] != 1 {
		t.Fatalf("after Sync: %v %v, want im-1: 1", got, err)
	}

	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = dead.Close() })
	q := presenceNew(t, dead, prefix, "im-2", 1, time.Hour)
	q.Connected("sync-v")
	start := time.Now()
	if err := q.Sync(ctx); err == nil {
		t.Fatal("Sync with Redis unreachable succeeded")
	}
	if ctx.Err() != nil {
		t.Fatalf("Sync waited for its context (%v) instead of failing with the flush", time.Since(start))
	}
}
