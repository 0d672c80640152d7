package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"imgate/message"
)

// GroupSource reads a group's members from the store for the node's membership cache;
// saver.Store satisfies it. An error wrapping message.ErrUnknownGroup means the group
// does not exist (cached too: its messages are refused like a non-member's).
type GroupSource interface {
	Group(ctx context.Context, groupID string) ([]string, error)
}

// The answers of groupCache.check.
const (
	groupMiss      = iota // not cached: the saver decides (and a load is queued)
	groupMember           // cached, the sender is a member
	groupNonMember        // cached, the sender is not a member or the group does not exist
)

// groupCacheLoadQueue bounds the group loads waiting for a loader; a load that does
// not fit is dropped (the message goes to the saver, which decides; a later miss
// queues the load again).
const groupCacheLoadQueue = 1024

// Loader goroutines and the bound of one load.
const (
	groupCacheLoaders     = 2
	groupCacheLoadTimeout = 5 * time.Second
)

// groupCache is the node's cache of group membership: a non-member's group message is
// refused on the node (ERROR forbidden) without its trip to the saver. The saver stays
// the authority: it checks membership again in the save, so a stale "member" costs
// nothing but that trip. A stale "non-member" would refuse a member, so every change
// invalidates: the server API drops the group on every node before it answers
// (Server.InvalidateGroups; in a cluster through the broker, whose node queue the
// change waits in while the node is cut off), the node drops everything when its bus
// reconnects, and an entry lives at most Config.GroupCacheTTL.
//
// Lookups run on the event loops under a read lock; loads run on loader goroutines. A
// load holds a ticket from the miss that queued it; an invalidation of its group (or of
// every group) marks the ticket stale and the load's result is not installed, so a read
// that raced a change never outlives it. Memory is bounded by Config.GroupCacheMembers:
// an entry costs its members, at least 1 (a group that does not exist, an empty group);
// arbitrary entries are evicted to make room, and a larger group is not cached.
type groupCache struct {
	src    GroupSource
	ttl    time.Duration
	budget int
	log    *slog.Logger
	warn   logEvery // a failed load

	mu      sync.RWMutex
	entries map[string]*groupEntry // guarded by mu
	loading map[string]*loadTicket // guarded by mu: queued or running loads
	size    int                    // guarded by mu: the cost of every entry

	queue     chan string
	ctx       context.Context // ends with close: running loads stop
	cancel    context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup

	hits, refused, misses, dropped atomic.Int64
}

type groupEntry struct {
	members map[string]struct{} // nil: the group does not exist
	expires time.Time
}

// cost is what e counts against the budget.
func (e *groupEntry) cost() int { return max(len(e.members), 1) }

// loadTicket is one queued load; stale once its group was invalidated. Guarded by mu.
type loadTicket struct{ stale bool }

// newGroupCache returns a cache reading from src; nil src gives nil (no cache: every
// group message goes to the saver).
func newGroupCache(src GroupSource, ttl time.Duration, budget int, log *slog.Logger) *groupCache {
	if src == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &groupCache{
		src: src, ttl: ttl, budget: budget, log: log, warn: logEvery{interval: 10 * time.Second},
		entries: make(map[string]*groupEntry),
		loading: make(map[string]*loadTicket),
		queue:   make(chan string, groupCacheLoadQueue),
		ctx:     ctx, cancel: cancel,
	}
}

// start runs groupCacheLoaders loaders until close.
func (g *groupCache) start() {
	for range groupCacheLoaders {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for {
				select {
				case <-g.ctx.Done():
					return
				case id := <-g.queue:
					g.load(id, groupCacheLoadTimeout)
				}
			}
		}()
	}
}

// close stops the loaders (a running read is cancelled) and waits for them; calls after
// the first do nothing.
func (g *groupCache) close() {
	g.closeOnce.Do(func() {
		g.cancel()
		g.wg.Wait()
	})
}

// check answers whether user may send to groupID as far as the cache knows; on a miss
// it queues a load without blocking. Safe on event loops.
func (g *groupCache) check(groupID, user string, now time.Time) int {
	g.mu.RLock()
	e, ok := g.entries[groupID]
	loading := g.loading[groupID] != nil
	g.mu.RUnlock()
	if ok && now.Before(e.expires) {
		if _, in := e.members[user]; in {
			g.hits.Add(1)
			return groupMember
		}
		g.refused.Add(1)
		return groupNonMember
	}
	g.misses.Add(1)
	if loading {
		return groupMiss // the load is queued: no write lock on the loops for every message meanwhile
	}
	g.mu.Lock()
	if g.loading[groupID] == nil {
		select {
		case g.queue <- groupID:
			g.loading[groupID] = &loadTicket{}
		default:
			g.dropped.Add(1)
		}
	}
	g.mu.Unlock()
	return groupMiss
}

// load reads groupID from the store and installs it unless the group was invalidated
// after the miss that queued the load.
func (g *groupCache) load(groupID string, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(g.ctx, timeout)
	members, err := g.src.Group(ctx, groupID)
	cancel()
	switch {
	case errors.Is(err, message.ErrUnknownGroup):
		err = nil
	case err != nil:
		if g.ctx.Err() == nil && g.warn.Allow() {
			g.log.Warn("group cache: cannot read a group; the saver checks its messages alone", "groupId", groupID, "err", err)
		}
	}
	var e *groupEntry
	if err == nil && len(members) <= g.budget {
		e = &groupEntry{expires: time.Now().Add(g.ttl)}
		if members != nil {
			e.members = make(map[string]struct{}, len(members))
			for _, u := range members {
				e.members[u] = struct{}{}
			}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t := g.loading[groupID]
	delete(g.loading, groupID)
	if e == nil || t == nil || t.stale {
		return // unreadable now (the saver decides; the next miss tries again), too large, or stale
	}
	g.removeLocked(groupID)
	if g.size+e.cost() > g.budget {
		// Arbitrary entries, in one pass over the map: a fresh range per eviction would
		// rescan the emptied part of the table each time while event loops wait on mu.
		for id := range g.entries {
			g.removeLocked(id)
			if g.size+e.cost() <= g.budget {
				break
			}
		}
	}
	g.entries[groupID] = e
	g.size += e.cost()
}

func (g *groupCache) removeLocked(groupID string) {
	if e, ok := g.entries[groupID]; ok {
		g.size -= e.cost()
		delete(g.entries, groupID)
	}
}

// invalidate drops groupIDs, or every entry when groupIDs is nil, and makes their
// queued and running loads stale.
func (g *groupCache) invalidate(groupIDs []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if groupIDs == nil {
		clear(g.entries)
		g.size = 0
		for _, t := range g.loading {
			t.stale = true
		}
		return
	}
	for _, id := range groupIDs {
		g.removeLocked(id)
		if t := g.loading[id]; t != nil {
			t.stale = true
		}
	}
}

// refusedByStore drops groupID when the cache holds user as a member of it: the saver
// refused user's message, so the entry is stale. An entry that already refuses user
// (loaded after the message went out) stays.
func (g *groupCache) refusedByStore(groupID, user string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e, ok := g.entries[groupID]; ok {
		if _, in := e.members[user]; in {
			g.removeLocked(groupID)
		}
	}
}

// InvalidateGroups makes the node forget what it cached of the membership of
// groupIDs (nil: of every group), so that its next message to one of them is checked
// against the store. The server API calls it (through the broker in a cluster) after
// it changed a group and before it answers; the node bus calls it with nil when it
// reconnects. It returns once the entries are gone; safe for concurrent use.
func (s *Server) InvalidateGroups(groupIDs []string) {
	if s.groups != nil {
		s.groups.invalidate(groupIDs)
	}
}
