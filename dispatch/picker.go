package dispatch

import (
	"math/rand/v2"
	"sync"
	"time"
)

// recentTTL is how long the Picker counts each of its own assignments to a node whose
// OnlineCounts does not change: a client sent there shows in the node's count within a
// few registry flushes, or it never connected (a test client, a client that gave up)
// and must stop weighing on the node. Assignments are counted in recentSlots slots of
// recentTTL/recentSlots each and leave the count slot by slot, so the count decays
// steadily instead of dropping to zero at once (which sent a whole TTL's worth of
// picks to that node).
const (
	recentTTL   = 5 * time.Second
	recentSlots = 5
	recentSlot  = recentTTL / recentSlots
)

// recentRing counts one node's assignments per slot of recentSlot.
type recentRing struct {
	slot [recentSlots]int64 // the slot number (time / recentSlot) each counter belongs to
	n    [recentSlots]int
}

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
	// ring holds the assignments counted in recent by the slot they were made in.
	// Guarded by mu.
	ring map[string]*recentRing
	// expired is the slot expireLocked last ran in. Guarded by mu.
	expired int64
	// seen is the OnlineCounts each node had when last seen. Guarded by mu.
	seen map[string]int64
	now  func() time.Time // time.Now; tests replace it
	// synced is the first element and length of the view slice seen was last synced
	// with: the same slice again needs no sync (views replace, never modify, their
	// slice). Guarded by mu.
	synced    *Node
	syncedLen int
	// peers is how many dispatchers pick for these nodes, this one included: each of
	// its own assignments counts peers times in a node's load (see NewPicker).
	peers int64
}

// MaxDispatchers bounds NewPicker's dispatchers (Config.Dispatchers).
const MaxDispatchers = 64

// NewPicker returns a Picker over view, one of dispatchers that pick for the same
// nodes (values below 1 mean 1). A nil view has no nodes.
//
// Dispatchers do not see each other's assignments, and each levels the nodes on its
// own: with D of them, a node short of d clients got D·d, so the shortfall turned into
// an excess of (D-1)·d that swung back larger at the next count (three dispatchers and
// 100 ms count flushes put a node 11 % from even over 10,000 picks). Counting each own
// assignment D times makes the dispatchers together send what levels the nodes. The
// count is configured, not estimated: an estimate from the counts' growth took clients
// that connect without a pick (a fixed URL) for other dispatchers and made a lone
// dispatcher fill a new node more slowly. A D set too high only levels more slowly.
func NewPicker(view NodeView, dispatchers int) *Picker {
	if view == nil {
		view = StaticView(nil)
	}
	return &Picker{
		view:   view,
		seed:   rand.Uint64() | 1, // never 0: 0 means "lowest ID" in pickIndex
		recent: make(map[string]int),
		ring:   make(map[string]*recentRing),
		seen:   make(map[string]int64),
		now:    time.Now,
		peers:  int64(min(max(dispatchers, 1), MaxDispatchers)),
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
	i := pickIndex(nodes, p.recent, p.seed, p.peers)
	if i < 0 {
		return Node{}, false
	}
	n := nodes[i]
	r := p.ring[n.ID]
	if r == nil {
		r = &recentRing{}
		p.ring[n.ID] = r
	}
	slot := p.now().UnixNano() / int64(recentSlot)
	if k := slot % recentSlots; r.slot[k] == slot {
		r.n[k]++
	} else {
		// An older slot still counted here is expired by expireLocked first.
		r.slot[k], r.n[k] = slot, 1
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
			clear(p.ring)
		}
		return
	}
	p.synced, p.syncedLen = &nodes[0], len(nodes)
	for i := range nodes {
		n := &nodes[i]
		if c, ok := p.seen[n.ID]; !ok || c != n.OnlineCounts {
			p.seen[n.ID] = n.OnlineCounts
			delete(p.recent, n.ID)
			delete(p.ring, n.ID)
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
			delete(p.ring, id)
		}
	}
}

// expireLocked forgets the assignments older than recentTTL, slot by slot: the node's
// count did not change in that time, so those clients are not coming. p.mu must be held.
func (p *Picker) expireLocked() {
	slot := p.now().UnixNano() / int64(recentSlot)
	if len(p.ring) == 0 || slot == p.expired {
		return
	}
	p.expired = slot
	// A slot is live while it is one of the recentSlots newest, the current included.
	oldest := slot - recentSlots + 1
	for id, r := range p.ring {
		left := 0
		for k := range r.n {
			if r.n[k] > 0 && r.slot[k] < oldest {
				p.recent[id] -= r.n[k]
				r.n[k] = 0
			}
			left += r.n[k]
		}
		if left == 0 {
			delete(p.ring, id)
			delete(p.recent, id)
		}
	}
}
