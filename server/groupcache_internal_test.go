package server

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"imgate/message"
)

// gatedSource answers each Group call once release gets a value, with the members it
// holds then.
type gatedSource struct {
	members map[string][]string
	started chan string
	release chan struct{}
}

func (g *gatedSource) Group(_ context.Context, id string) ([]string, error) {
	g.started <- id
	<-g.release
	m, ok := g.members[id]
	if !ok {
		return nil, fmt.Errorf("%q: %w", id, message.ErrUnknownGroup)
	}
	return m, nil
}

// A load that was reading while the group changed is not installed: the read may
// hold the membership from before the change.
func TestGroupCacheDropsALoadThatRacedAChange(t *testing.T) {
	src := &gatedSource{members: map[string][]string{"g": {"a"}}, started: make(chan string, 1), release: make(chan struct{})}
	c := newGroupCache(src, time.Minute, 100, slog.New(slog.DiscardHandler))
	now := time.Now()
	if c.check("g", "a", now) != groupMiss {
		t.Fatal("an empty cache answered")
	}
	done := make(chan struct{})
	go func() { c.load(<-c.queue, time.Second); close(done) }()
	<-src.started
	c.invalidate([]string{"g"}) // the change commits while the read runs
	close(src.release)
	<-done
	if got := c.check("g", "a", now); got != groupMiss {
		t.Fatalf("a load that raced a change was installed (answer %d)", got)
	}
	go func() { c.load(<-c.queue, time.Second); close(src.started) }()
	<-src.started
	waitUntil(t, func() bool { return c.check("g", "b", now) == groupNonMember })
	if c.check("g", "a", now) != groupMember {
		t.Fatal("a member is not a member")
	}
	if c.check("g", "a", now.Add(2*time.Minute)) != groupMiss {
		t.Fatal("an entry outlived its TTL")
	}
}

// loadNow queues id as a miss would and runs its load on this goroutine.
func loadNow(c *groupCache, id string) {
	c.check(id, "", time.Now())
	c.load(<-c.queue, time.Second)
}

// Members over every entry stay within the budget, a group that does not exist costing
// one; a group over the budget is not cached.
func TestGroupCacheStaysWithinItsBudget(t *testing.T) {
	src := &gatedSource{members: map[string][]string{"a": {"1", "2", "3"}, "b": {"1", "2"}, "big": {"1", "2", "3", "4", "5"}},
		started: make(chan string, 100), release: make(chan struct{})}
	close(src.release)
	c := newGroupCache(src, time.Minute, 4, slog.New(slog.DiscardHandler))
	for _, id := range []string{"a", "b", "big", "x1", "x2", "x3", "x4", "x5"} {
		loadNow(c, id)
		if c.size > 4 || len(c.entries) > 4 {
			t.Fatalf("after %s: %d entries costing %d, budget 4", id, len(c.entries), c.size)
		}
	}
	if _, ok := c.entries["big"]; ok {
		t.Fatal("a group over the budget was cached")
	}
	if _, ok := c.entries["x5"]; !ok {
		t.Fatal("the last group that fits is not cached")
	}
}

// An invalidation makes only its own group's loads stale: a stream of changes to other
// groups does not keep a group from being cached.
func TestGroupCacheInvalidationIsPerGroup(t *testing.T) {
	src := &gatedSource{members: map[string][]string{"a": {"u"}}, started: make(chan string, 1), release: make(chan struct{})}
	c := newGroupCache(src, time.Minute, 100, slog.New(slog.DiscardHandler))
	c.check("a", "u", time.Now())
	done := make(chan struct{})
	go func() { c.load(<-c.queue, time.Second); close(done) }()
	<-src.started
	c.invalidate([]string{"b"})
	close(src.release)
	<-done
	if c.check("a", "u", time.Now()) != groupMember {
		t.Fatal("a change to group b kept group a out of the cache")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}
