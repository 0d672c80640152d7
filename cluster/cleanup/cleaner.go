package cleanup

import (
	"context"
	"log/slog"
	"time"

	"imgate/cluster/registry"
)

// PortReleaser frees the ports a vanished node held (ports.Allocator).
type PortReleaser interface {
	ReleaseOwner(ctx context.Context, owner string) (int, error)
}

// NodeRemover drops the presence entries of a vanished node (presence.Tracker).
type NodeRemover interface {
	RemoveNode(ctx context.Context, nodeID string, epoch int64) error
}

// NodeLister lists the live registrations (registry.Watcher).
type NodeLister interface {
	Nodes() []registry.Node
}

// Cleaner removes what a node left behind when its znode disappears: its port claim and
// its users' presence, the job of the original system's cache listener. Every node and
// dispatcher may run one: both cleanups are compare-and-delete and idempotent. OnChange is
// meant for registry.Watcher.OnChange; it does the I/O on its own goroutine and never blocks.
type Cleaner struct {
	nodes    NodeLister
	ports    PortReleaser // may be nil
	presence NodeRemover  // may be nil
	log      *slog.Logger
	timeout  time.Duration
	// grace is how long a vanished node's token may take to show up again under a new
	// znode (a re-registration after a session expiry) before its port is released.
	grace time.Duration
}

// New returns a Cleaner; ports or presence may be nil.
func New(nodes NodeLister, ports PortReleaser, presence NodeRemover, log *slog.Logger) *Cleaner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cleaner{nodes: nodes, ports: ports, presence: presence, log: log, timeout: 10 * time.Second, grace: 2 * time.Second}
}

// OnChange is the watcher callback: it cleans up after every removed node.
func (c *Cleaner) OnChange(_, removed []registry.Node) {
	if len(removed) == 0 {
		return
	}
	go c.clean(removed)
}

func (c *Cleaner) clean(removed []registry.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout+c.grace)
	defer cancel()
	for _, n := range removed {
		if c.presence != nil {
			if err := c.presence.RemoveNode(ctx, n.ID, n.Epoch); err != nil {
				c.log.Warn("cleanup: presence cleanup failed", "node", n.ID, "err", err)
			}
		}
	}
	if c.ports == nil {
		return
	}
	// A node that re-registers after a session expiry keeps its token; give its new
	// znode time to appear before deciding that the port is free.
	select {
	case <-time.After(c.grace):
	case <-ctx.Done():
		return
	}
	live := map[string]bool{}
	for _, n := range c.nodes.Nodes() {
		live[n.Token] = true
	}
	for _, n := range removed {
		// A node that re-registered after a session expiry keeps its token: its port is
		// still in use.
		if n.Token != "" && !live[n.Token] {
			if released, err := c.ports.ReleaseOwner(ctx, n.Token); err != nil {
				c.log.Warn("cleanup: port cleanup failed", "node", n.ID, "err", err)
			} else if released > 0 {
				c.log.Info("cleanup: released the port of a vanished node", "node", n.ID, "ports", released)
			}
		}
	}
}
