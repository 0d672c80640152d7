package presence

import (
	"context"
	"maps"
	"sync"
)

// presenceAPI is what Tracker and its memory twin share; presenceWant reads either.
type presenceAPI interface {
	Connected(userID string)
	Disconnected(userID string)
	Lookup(ctx context.Context, userID string) (map[string]int, error)
	RemoveNode(ctx context.Context, nodeID string, epoch int64) error
	Close() error
}

var (
	_ presenceAPI = (*memoryPresence)(nil)
	_ presenceAPI = (*Tracker)(nil)
)

// memoryPresence is an in-process twin of Tracker that states the fencing rules without
// Redis: its writes take effect at once. (Standalone does not use it: it has no registry
// and keeps its own localPresence.) It is safe for concurrent use.
type memoryPresence struct {
	mu     sync.Mutex
	nodeID string
	epoch  int64
	users  map[string]map[string]memoryPresenceEntry // user → node → entry
	fences map[string]int64                          // node → highest removed epoch
}

type memoryPresenceEntry struct {
	epoch   int64
	devices int
}

// newMemoryPresence returns an empty memoryPresence for node "local", epoch 1;
// SetIdentity changes both.
func newMemoryPresence() *memoryPresence {
	return &memoryPresence{
		nodeID: "local",
		epoch:  1,
		users:  make(map[string]map[string]memoryPresenceEntry),
		fences: make(map[string]int64),
	}
}

// SetIdentity makes later calls act for nodeID registered at epoch; the entries
// of the previous identity move to the new one.
func (m *memoryPresence) SetIdentity(nodeID string, epoch int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if nodeID == m.nodeID && epoch == m.epoch {
		return
	}
	for _, nodes := range m.users {
		if e, ok := nodes[m.nodeID]; ok {
			delete(nodes, m.nodeID)
			nodes[nodeID] = memoryPresenceEntry{epoch: epoch, devices: e.devices}
		}
	}
	m.nodeID, m.epoch = nodeID, epoch
}

// Connected records one more device of userID on this node.
func (m *memoryPresence) Connected(userID string) { m.add(userID, 1) }

// Disconnected records one device fewer.
func (m *memoryPresence) Disconnected(userID string) { m.add(userID, -1) }

func (m *memoryPresence) add(userID string, delta int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fences[m.nodeID] >= m.epoch {
		return
	}
	nodes := m.users[userID]
	n := nodes[m.nodeID].devices + delta
	if n <= 0 {
		delete(nodes, m.nodeID)
		if len(nodes) == 0 {
			delete(m.users, userID)
		}
		return
	}
	if nodes == nil {
		nodes = make(map[string]memoryPresenceEntry)
		m.users[userID] = nodes
	}
	nodes[m.nodeID] = memoryPresenceEntry{epoch: m.epoch, devices: n}
}

// Lookup is Tracker's.
func (m *memoryPresence) Lookup(_ context.Context, userID string) (map[string]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.users[userID]))
	for node, e := range m.users[userID] {
		out[node] = e.devices
	}
	return out, nil
}

// RemoveNode is Tracker's.
func (m *memoryPresence) RemoveNode(_ context.Context, nodeID string, epoch int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if epoch > m.fences[nodeID] {
		m.fences[nodeID] = epoch
	}
	for user, nodes := range m.users {
		if e, ok := nodes[nodeID]; ok && e.epoch <= epoch {
			delete(nodes, nodeID)
			if len(nodes) == 0 {
				delete(m.users, user)
			}
		}
	}
	return nil
}

// resync is Tracker's.
func (m *memoryPresence) resync(_ context.Context, snapshot map[string]int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fences[m.nodeID] >= m.epoch {
		return ErrFenced
	}
	for user, nodes := range m.users {
		delete(nodes, m.nodeID)
		if len(nodes) == 0 {
			delete(m.users, user)
		}
	}
	for user, n := range maps.All(snapshot) {
		if n <= 0 {
			continue
		}
		nodes := m.users[user]
		if nodes == nil {
			nodes = make(map[string]memoryPresenceEntry)
			m.users[user] = nodes
		}
		nodes[m.nodeID] = memoryPresenceEntry{epoch: m.epoch, devices: n}
	}
	return nil
}

// Close is Tracker's.
func (m *memoryPresence) Close() error { return nil }
