package cluster

import (
	"context"
	"errors"
	"maps"
	"sync"
)

// ErrFenced is returned by a presence whose node registration was removed
// (RemoveNode with an epoch at least its own): it must register again and call
// SetIdentity with the new id and epoch before its entries are written again.
var ErrFenced = errors.New("cluster: presence fenced: node registration removed")

// Presence tracks on which nodes a user has devices, and how many on each.
//
// Connected and Disconnected are called by a node for its own devices from its
// event loops: they never block on I/O. Entries carry the node's registration
// epoch, so RemoveNode can drop the entries of a dead node without touching a newer
// registration, and a paused node that comes back cannot write them again.
type Presence interface {
	// Connected records one more device of userID on this node.
	Connected(userID string)
	// Disconnected records one device fewer of userID on this node.
	Disconnected(userID string)
	// Lookup returns node id → device count for userID; empty when offline.
	Lookup(ctx context.Context, userID string) (map[string]int, error)
	// RemoveNode drops the entries nodeID wrote with an epoch <= epoch and fences
	// that registration; called when the node's znode disappears.
	RemoveNode(ctx context.Context, nodeID string, epoch int64) error
	// Resync replaces this node's entries with snapshot (user → devices).
	Resync(ctx context.Context, snapshot map[string]int) error
	// Close stops background work; it flushes what it can first.
	Close() error
}

var (
	_ Presence = (*MemoryPresence)(nil)
	_ Presence = (*RedisPresence)(nil)
)

// MemoryPresence is the in-process Presence of the standalone server and of tests.
// Its writes take effect at once. It is safe for concurrent use.
type MemoryPresence struct {
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

// NewMemoryPresence returns an empty MemoryPresence for node "local", epoch 1;
// SetIdentity changes both.
func NewMemoryPresence() *MemoryPresence {
	return &MemoryPresence{
		nodeID: "local",
		epoch:  1,
		users:  make(map[string]map[string]memoryPresenceEntry),
		fences: make(map[string]int64),
	}
}

// SetIdentity makes later calls act for nodeID registered at epoch; the entries
// of the previous identity move to the new one.
func (m *MemoryPresence) SetIdentity(nodeID string, epoch int64) {
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

// Connected implements Presence.
func (m *MemoryPresence) Connected(userID string) { m.add(userID, 1) }

// Disconnected implements Presence.
func (m *MemoryPresence) Disconnected(userID string) { m.add(userID, -1) }

func (m *MemoryPresence) add(userID string, delta int) {
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

// Lookup implements Presence.
func (m *MemoryPresence) Lookup(_ context.Context, userID string) (map[string]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.users[userID]))
	for node, e := range m.users[userID] {
		out[node] = e.devices
	}
	return out, nil
}

// Presence is Lookup under the name the dispatcher's presence API expects.
func (m *MemoryPresence) Presence(ctx context.Context, userID string) (map[string]int, error) {
	return m.Lookup(ctx, userID)
}

// RemoveNode implements Presence.
func (m *MemoryPresence) RemoveNode(_ context.Context, nodeID string, epoch int64) error {
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

// Resync implements Presence.
func (m *MemoryPresence) Resync(_ context.Context, snapshot map[string]int) error {
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

// Close implements Presence.
func (m *MemoryPresence) Close() error { return nil }
