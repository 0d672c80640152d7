package bus

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"imgate/cluster/bus/wire"
)

// GroupCache is a node's cache of group membership, which the bus keeps true:
// server.Server satisfies it. InvalidateGroups(nil) drops every group.
type GroupCache interface {
	InvalidateGroups(groupIDs []string)
}

// answerTimeout bounds the publish of a ChangeApplied answer; maxAnswers bounds the
// answers being published at once (each on its own goroutine, so that the consumer
// that delivers the node's messages never waits for the confirm window). An answer
// over it is dropped with a WARN: the announcer stops waiting at its deadline, and the
// node has dropped the groups all the same.
const (
	answerTimeout = 2 * time.Second
	maxAnswers    = 64
)

// changes are the group changes this bus announced and waits on, by id.
type changes struct {
	mu      sync.Mutex
	next    uint64
	pending map[uint64]*change // guarded by mu
}

type change struct {
	missing map[string]bool // nodes that have not answered yet; guarded by changes.mu
	done    chan struct{}   // closed when missing is empty
}

// ChangeGroups tells every node that the membership of groupIDs changed, and returns
// once each of nodes (their bus ids, Record.Node) has dropped them from its cache, or
// when ctx ends, with an error naming the nodes that had not answered by then. The
// server API calls it after each change is stored and before it answers, so that the
// change applies to the next message on every node. A node that does not answer in
// time gets the change from its queue when it reads it again, drops its whole cache
// when its broker connection comes back, and trusts no entry longer than its TTL.
func (b *NodeBus) ChangeGroups(ctx context.Context, groupIDs []string, nodes []string) error {
	if len(groupIDs) == 0 {
		return nil
	}
	if err := b.State(); err != nil {
		return err
	}
	c := &change{missing: make(map[string]bool, len(nodes)), done: make(chan struct{})}
	for _, n := range nodes {
		c.missing[n] = true
	}
	b.changes.mu.Lock()
	b.changes.next++
	id := b.changes.next
	if len(c.missing) == 0 {
		close(c.done)
	} else {
		b.changes.pending[id] = c
	}
	b.changes.mu.Unlock()
	defer func() {
		b.changes.mu.Lock()
		delete(b.changes.pending, id)
		b.changes.mu.Unlock()
	}()
	published := make(chan error, 1)
	body := wire.EncodeChange(wire.GroupsChanged, wire.Change{ID: id, Node: b.route, Groups: groupIDs})
	if err := b.pub.Submit(ctx, b.cfg.Exchange, "", body, func(err error) { published <- err }); err != nil {
		return fmt.Errorf("bus: announce group change: %w", err)
	}
	select {
	case err := <-published:
		if err != nil {
			return fmt.Errorf("bus: announce group change: %w", err)
		}
	case <-ctx.Done():
		return fmt.Errorf("bus: announce group change: %w", ctx.Err())
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		b.changes.mu.Lock()
		var late []string
		for n := range c.missing {
			late = append(late, n)
		}
		b.changes.mu.Unlock()
		slices.Sort(late)
		return fmt.Errorf("bus: group change not confirmed by %d of %d nodes %v: %w", len(late), len(nodes), late, ctx.Err())
	}
}

// applied records node's answer to the change id.
func (cs *changes) applied(id uint64, node string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c, ok := cs.pending[id]
	if !ok || !c.missing[node] {
		return // answered late, twice, or by a node not waited for
	}
	delete(c.missing, node)
	if len(c.missing) == 0 {
		close(c.done)
	}
}

// handleChange handles a change message from the node queue: a GroupsChanged is
// applied to the cache (a bus without one ignores it) and answered to its announcer;
// a ChangeApplied completes a change this bus waits on.
func (b *NodeBus) handleChange(body []byte) {
	kind, c, err := wire.DecodeChange(body)
	if err != nil {
		b.cfg.Logger.Warn("bus: dropping a change that does not decode", "queue", b.queue, "err", err)
		return
	}
	if kind == wire.ChangeApplied {
		b.changes.applied(c.ID, c.Node)
		return
	}
	if b.groups == nil {
		return
	}
	b.groups.InvalidateGroups(c.Groups)
	select {
	case b.answers <- struct{}{}:
	default:
		b.cfg.Logger.Warn("bus: too many group change answers in flight; dropping one (its announcer times out)", "to", c.Node, "limit", maxAnswers)
		return
	}
	answer := wire.EncodeChange(wire.ChangeApplied, wire.Change{ID: c.ID, Node: b.route})
	go func() {
		defer func() { <-b.answers }()
		ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
		defer cancel()
		confirmed := make(chan error, 1)
		if err := b.pub.Submit(ctx, b.cfg.RouteExchange, c.Node, answer, func(err error) { confirmed <- err }); err != nil {
			confirmed <- err
		}
		// Returned (the announcer is gone) or not confirmed (the broker is): the announcer
		// stops waiting at its deadline and names this node in its WARN.
		if err := <-confirmed; err != nil {
			b.cfg.Logger.Debug("bus: group change answer not delivered", "to", c.Node, "err", err)
		}
	}()
}
