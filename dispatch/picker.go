package dispatch

import (
	"math/rand/v2"
	"sync"
	"time"
)

// recentTTL is how long the Picker counts its own assignments to a node whose
// OnlineCounts does not change: a client sent there shows in the node's count within a
// few registry flushes, or it never connected (a test client, a client that gave up)
// and must stop weighing on the node.
const recentTTL = 5 * time.Second

// NodeView is the dispatcher's in-memory view of the live nodes. `imgate dispatch`
// implements it in cmd/imgate over the ZooKeeper watcher (registry.Watcher); the
// standalone process uses NodeViewFunc, and tests StaticView.
//
// Nodes is called on every pick, from many goroutines at once: it must answer from
// memory, without I/O, and be safe for concurrent use. The caller treats the returned
// slice as read-only, so an implementation may return the same slice to every caller
// as long as it never modifies it afterwards (replace it instead).
type NodeView interface {
	Nodes() []Node
}

// NodeViewFunc adapts a function to NodeView.
type NodeViewFunc func() []Node

// Nodes returns f().
func (f NodeViewFunc) Nodes() []Node { return f() }

// StaticView is a fixed set of nodes. Like any view's slice it must not be modified
// once in use: build a new one instead.
type StaticView []Node

// Nodes returns v itself.
func (v StaticView) Nodes() []Node { return v }

// Picker picks nodes for clients from a NodeView and remembers its own recent
// assignments, so that the clients it sends to a node count against that node until
// the node reports a new OnlineCounts. It is safe for concurrent use and does no I/O.
type Picker struct {
	view NodeView
	// seed breaks ties between nodes of equal load (see Pick); random per Picker.
	seed uint64

	mu sync.Mutex
	// recent is the number of clients sent to each node since its count last changed.
	// Guarded by mu.
	recent map[string]int
	// since is when the oldest assignment counted in recent was made. Guarded by mu.
	since map[string]time.Time
	// seen is the OnlineCounts each node had when last seen. Guarded by mu.
	seen map[string]int64
	now  func() time.Time // time.Now; tests replace it
	// synced is the first element and length of the view slice seen was last synced
	// with: the same slice again needs no sync (views replace, never modify, their
	// slice). Guarded by mu.
	synced    *Node
	syncedLen int
}

// NewPicker returns a Picker over view. A nil view has no nodes.
func NewPicker(view NodeView) *Picker {
	if view == nil {
		view = StaticView(nil)
	}
	return &Picker{
		view:   view,
		seed:   rand.Uint64() | 1, // never 0: 0 means "lowest ID" in pickIndex
		recent: make(map[string]int),
		since:  make(map[string]time.Time),
		seen:   make(map[string]int64),
		now:    time.Now,
	}
}

// Pick chooses the least-loaded live, non-draining node for userID (see the function
// Pick) and counts the assignment; false when no node is eligible. userID does not
// influence the choice today; it is accepted so that affinity can be added without
// changing callers.
func (p *Picker) Pick(userID string) (Node, bool) {
	_ = userID
	p.mu.Lock()
	defer p.mu.Unlock()
	// The view is read under mu, so that an older slice read by one goroutine never
	// re-syncs after a newer one (that would reset recent twice).
	nodes := p.view.Nodes()
	p.syncLocked(nodes)
	i := pickIndex(nodes, p.recent, p.seed)
	if i < 0 {
		return Node{}, false
	}
	n := nodes[i]
	if p.recent[n.ID] == 0 {
		p.since[n.ID] = p.now()
	}
	p.recent[n.ID]++
	return n, true
}

// snapshot returns the current nodes of the view and a copy of the recent assignments.
func (p *Picker) snapshot() ([]Node, map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	nodes := p.view.Nodes()
	p.syncLocked(nodes)
	recent := make(map[string]int, len(p.recent))
	for id, c := range p.recent {
		recent[id] = c
	}
	return nodes, recent
}

// syncLocked forgets the recent assignments of every node whose OnlineCounts changed
// since the last call, and everything about nodes no longer in the view.
// p.mu must be held.
func (p *Picker) syncLocked(nodes []Node) {
	p.expireLocked()
	if len(nodes) == 0 || (&nodes[0] == p.synced && len(nodes) == p.syncedLen) {
		if len(nodes) == 0 && len(p.seen) > 0 {
			clear(p.seen)
			clear(p.recent)
			clear(p.since)
		}
		return
	}
	p.synced, p.syncedLen = &nodes[0], len(nodes)
	for i := range nodes {
		n := &nodes[i]
		if c, ok := p.seen[n.ID]; !ok || c != n.OnlineCounts {
			p.seen[n.ID] = n.OnlineCounts
			delete(p.recent, n.ID)
			delete(p.since, n.ID)
		}
	}
	// After the loop seen holds every node of the view, so it is larger than the view
	// exactly when it also holds nodes that left (assuming unique IDs).
	if len(p.seen) <= len(nodes) {
		return
	}
	live := make(map[string]struct{}, len(nodes))
	for i := range nodes {
		live[nodes[i].ID] = struct{}{}
	}
	for id := range p.seen {
		if _, ok := live[id]; !ok {
			delete(p.seen, id)
			delete(p.recent, id)
			delete(p.since, id)
		}
	}
}

// expireLocked forgets the assignments to a node that are older than recentTTL: its
// count did not change in that time, so those clients are not coming. p.mu must be held.
func (p *Picker) expireLocked() {
	if len(p.since) == 0 {
		return
	}
	now := p.now()
	for id, t := range p.since {
		if now.Sub(t) > recentTTL {
			delete(p.since, id)
			delete(p.recent, id)
			delete(p.since, id)
		}
	}
}
