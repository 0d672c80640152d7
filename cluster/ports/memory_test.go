package ports

import (
	"context"
	"fmt"
	"sync"
)

// memoryPorts is an in-process twin of Allocator with its methods and semantics: the tests run
// every case against both, so the twin pins down what the Redis scripts must do. Safe for
// concurrent use.
type memoryPorts struct {
	mu     sync.Mutex
	claims map[string]string // "<host>:<port>" → owner; guarded by mu
}

func newMemoryPorts() *memoryPorts {
	return &memoryPorts{claims: map[string]string{}}
}

// Acquire claims the first free and bindable port of base, base+step, ... (at most
// portCandidates candidates) for owner.
func (m *memoryPorts) Acquire(ctx context.Context, host string, base, step int, owner string) (int, error) {
	if err := checkPortArgs(host, base, step, owner); err != nil {
		return 0, err
	}
	for i := 0; i < portCandidates; i++ {
		port := base + i*step
		if port > 65535 {
			break
		}
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("ports: acquire: %w", err)
		}
		f := portField(host, port)
		m.mu.Lock()
		_, taken := m.claims[f]
		if !taken {
			m.claims[f] = owner
		}
		m.mu.Unlock()
		if taken {
			continue
		}
		if portBindable(host, port) != nil {
			m.release(f, owner)
			continue
		}
		return port, nil
	}
	return 0, fmt.Errorf("%w on %s from %d step %d", ErrNoFreePort, host, base, step)
}

// Claim claims host:port for owner without a bind check (a node re-asserting the port it
// listens on). It succeeds if the port is free or already owner's, else returns ErrNotOwner.
func (m *memoryPorts) Claim(_ context.Context, host string, port int, owner string) error {
	f := portField(host, port)
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.claims[f]; ok && cur != owner {
		return fmt.Errorf("%w: %s", ErrNotOwner, f)
	}
	m.claims[f] = owner
	return nil
}

// Release removes the claim on host:port if owner still holds it. A missing claim is not an
// error; one held by another owner is ErrNotOwner.
func (m *memoryPorts) Release(_ context.Context, host string, port int, owner string) error {
	f := portField(host, port)
	if !m.release(f, owner) {
		m.mu.Lock()
		_, exists := m.claims[f]
		m.mu.Unlock()
		if exists {
			return fmt.Errorf("%w: %s", ErrNotOwner, f)
		}
	}
	return nil
}

// ReleaseOwner removes every claim of owner and returns how many it removed.
func (m *memoryPorts) ReleaseOwner(_ context.Context, owner string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for f, o := range m.claims {
		if o == owner {
			delete(m.claims, f)
			n++
		}
	}
	return n, nil
}

// release is compare-and-delete.
func (m *memoryPorts) release(f, owner string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.claims[f] != owner {
		return false
	}
	delete(m.claims, f)
	return true
}

// owners returns every claim, field "<host>:<port>" → owner.
func (m *memoryPorts) owners(_ context.Context) (map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.claims))
	for f, o := range m.claims {
		out[f] = o
	}
	return out, nil
}
