package cleanup

import (
	"context"
	"sync"
	"testing"
	"time"

	"imgate/cluster/registry"
)

type fakeNodes struct {
	mu    sync.Mutex
	nodes []registry.Node
}

func (f *fakeNodes) Nodes() []registry.Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]registry.Node(nil), f.nodes...)
}

func (f *fakeNodes) set(n ...registry.Node) {
	f.mu.Lock()
	f.nodes = n
	f.mu.Unlock()
}

type fakeCleanup struct {
	mu       sync.Mutex
	released []string
	removed  []string
}

func (f *fakeCleanup) ReleaseOwner(_ context.Context, owner string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released = append(f.released, owner)
	return 1, nil
}

func (f *fakeCleanup) RemoveNode(_ context.Context, id string, _ int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, id)
	return nil
}

func (f *fakeCleanup) snapshot() (released, removed []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.released...), append([]string(nil), f.removed...)
}

// TestCleanerKeepsThePortOfAReregisteredNode: a vanished znode's presence goes at once;
// its port goes only if no live node carries its token after the grace period (a node
// re-registering after a session expiry keeps its token and its port).
func TestCleanerKeepsThePortOfAReregisteredNode(t *testing.T) {
	cases := []struct {
		name        string
		reappears   bool
		wantRelease bool
	}{
		{"vanished for good", false, true},
		{"re-registered under a new znode", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nodes := &fakeNodes{}
			fc := &fakeCleanup{}
			c := New(nodes, fc, fc, nil)
			c.grace = 100 * time.Millisecond
			old := registry.Node{ID: "im-0000000001", Epoch: 1, Token: "tok"}
			c.OnChange(nil, []registry.Node{old})
			if tc.reappears {
				nodes.set(registry.Node{ID: "im-0000000002", Epoch: 2, Token: "tok"})
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				released, removed := fc.snapshot()
				if len(removed) == 1 && (len(released) == 1 || !tc.wantRelease && time.Now().After(deadline.Add(-4*time.Second))) {
					if got := len(released) == 1; got != tc.wantRelease {
						t.Fatalf("port released %v, want %v", got, tc.wantRelease)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("timed out: released %v removed %v", released, removed)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}
