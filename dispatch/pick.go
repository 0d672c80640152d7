package dispatch

// Node is one IM node as the dispatcher sees it: the data of its ZooKeeper znode
// (PROTOCOL §6) plus the znode name.
type Node struct {
	// ID is the znode name, for example "im-0000000003". IDs are unique within a view.
	ID string
	// IP and Port are the address clients connect to.
	IP   string
	Port int
	// OnlineCounts is the number of connections the node last reported.
	OnlineCounts int64
	// WSURL is the WebSocket URL handed to clients; empty means "ws://IP:Port/ws".
	WSURL string
	// Draining is true while the node stops accepting new clients. A draining node is
	// listed but never picked.
	Draining bool
}

// Pick returns the least-loaded eligible node of nodes, and false when none is eligible.
//
// A node is eligible when it is not draining; every node of a view is live (the view
// holds only registered nodes). The load of a node is OnlineCounts (a negative count is
// taken as 0) plus recent[ID], the clients this dispatcher sent to it since the node's
// count last changed: without it a burst of clients arriving between two count updates
// would all land on the same node.
//
// Ties go to the lowest ID (IDs are zero-padded znode sequence numbers, so that is the
// oldest node). The choice is deterministic, and a caller that counts its assignments
// in recent turns ties into round-robin: with loads {0,0,0} the picks go A, B, C, A, …,
// an exact spread. Picker breaks ties by a per-dispatcher hash instead, so that several
// dispatchers sharing a cluster do not all start the round at the same node.
//
// Pick is pure: it reads nodes and recent and modifies neither.
func Pick(nodes []Node, recent map[string]int) (Node, bool) {
	i := pickIndex(nodes, recent, 0, 1)
	if i < 0 {
		return Node{}, false
	}
	return nodes[i], true
}

// pickIndex is Pick with a tie-break seed and a weight of recent; it returns the index
// of the chosen node or -1. Seed 0 breaks ties by lowest ID; any other seed by the
// lowest tieKey(seed, ID), then lowest ID. A node's load is its count plus weight times
// its recent assignments (Picker's estimate of the dispatchers picking alike).
func pickIndex(nodes []Node, recent map[string]int, seed uint64, weight int64) int {
	best := -1
	var bestLoad int64
	var bestKey uint64 // tieKey of nodes[best], valid when keyed
	keyed := false
	for i := range nodes {
		n := &nodes[i]
		if n.Draining {
			continue
		}
		load := max(n.OnlineCounts, 0) + weight*int64(recent[n.ID])
		switch {
		case best < 0 || load < bestLoad:
			best, bestLoad, keyed = i, load, false
			continue
		case load > bestLoad:
			continue
		}
		// A tie: hash only now, ties being the exception with real counts.
		if seed == 0 {
			if n.ID < nodes[best].ID {
				best = i
			}
			continue
		}
		if !keyed {
			bestKey, keyed = tieKey(seed, nodes[best].ID), true
		}
		if key := tieKey(seed, n.ID); key < bestKey || (key == bestKey && n.ID < nodes[best].ID) {
			best, bestKey = i, key
		}
	}
	return best
}

// tieKey orders nodes of equal load for a non-zero seed: a hash of id mixed with seed
// (FNV-1a, then the splitmix64 finalizer).
func tieKey(seed uint64, id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	h ^= seed
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
