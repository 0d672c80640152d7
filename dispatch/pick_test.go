package dispatch

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func threeNodes(counts ...int64) []Node {
	nodes := make([]Node, len(counts))
	for i, c := range counts {
		nodes[i] = Node{ID: fmt.Sprintf("im-%010d", i+1), IP: "127.0.0.1", Port: 875 + i, OnlineCounts: c}
	}
	return nodes
}

// pickMany picks n times with Pick, counting each assignment in recent as a Picker
// does, and returns the picks per node ID.
func pickMany(t *testing.T, nodes []Node, n int) map[string]int {
	t.Helper()
	recent := map[string]int{}
	got := map[string]int{}
	for range n {
		node, ok := Pick(nodes, recent)
		if !ok {
			t.Fatalf("Pick: no node among %v", nodes)
		}
		recent[node.ID]++
		got[node.ID]++
	}
	return got
}

func TestPickDistributionEqualCounts(t *testing.T) {
	nodes := threeNodes(0, 0, 0)
	got := pickMany(t, nodes, 3000)
	for _, n := range nodes {
		if c := got[n.ID]; c < 999 || c > 1001 {
			t.Errorf("node %s got %d picks, want 1000±1 (all: %v)", n.ID, c, got)
		}
	}
}

func TestPickDistributionUnequalCounts(t *testing.T) {
	nodes := threeNodes(100, 0, 0)
	recent := map[string]int{}
	for i := range 200 {
		n, ok := Pick(nodes, recent)
		if !ok {
			t.Fatal("Pick: no node")
		}
		if n.ID == nodes[0].ID {
			t.Fatalf("pick %d went to the loaded node while the others had %v", i, recent)
		}
		recent[n.ID]++
	}
	if recent[nodes[1].ID] != 100 || recent[nodes[2].ID] != 100 {
		t.Fatalf("after 200 picks recent = %v, want 100 each on the idle nodes", recent)
	}
	// All three are at 100 now: the next 300 spread evenly.
	for range 300 {
		n, _ := Pick(nodes, recent)
		recent[n.ID]++
	}
	for _, n := range nodes {
		if load := n.OnlineCounts + int64(recent[n.ID]); load != 200 {
			t.Errorf("node %s load %d, want 200 (recent %v)", n.ID, load, recent)
		}
	}
}

func TestPickEligibility(t *testing.T) {
	tests := []struct {
		name   string
		nodes  []Node
		recent map[string]int
		wantID string
		wantOK bool
	}{
		{name: "empty", nodes: nil, wantOK: false},
		{name: "all draining", nodes: []Node{{ID: "a", Draining: true}, {ID: "b", Draining: true}}, wantOK: false},
		{name: "draining least loaded skipped",
			nodes:  []Node{{ID: "a", OnlineCounts: 0, Draining: true}, {ID: "b", OnlineCounts: 50}},
			wantID: "b", wantOK: true},
		{name: "least loaded",
			nodes:  []Node{{ID: "a", OnlineCounts: 9}, {ID: "b", OnlineCounts: 3}, {ID: "c", OnlineCounts: 5}},
			wantID: "b", wantOK: true},
		{name: "recent counts",
			nodes:  []Node{{ID: "a", OnlineCounts: 9}, {ID: "b", OnlineCounts: 3}, {ID: "c", OnlineCounts: 5}},
			recent: map[string]int{"b": 4}, wantID: "c", wantOK: true},
		{name: "tie goes to lowest ID",
			nodes:  []Node{{ID: "im-3", OnlineCounts: 1}, {ID: "im-1", OnlineCounts: 1}, {ID: "im-2", OnlineCounts: 1}},
			wantID: "im-1", wantOK: true},
		{name: "negative count taken as zero",
			nodes:  []Node{{ID: "a", OnlineCounts: -100}, {ID: "b", OnlineCounts: 0}},
			recent: map[string]int{"a": 1}, wantID: "b", wantOK: true},
		{name: "recent of unknown node ignored",
			nodes:  []Node{{ID: "a", OnlineCounts: 1}},
			recent: map[string]int{"zz": 5}, wantID: "a", wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Pick(tt.nodes, tt.recent)
			if ok != tt.wantOK || got.ID != tt.wantID {
				t.Fatalf("Pick = (%q, %v), want (%q, %v)", got.ID, ok, tt.wantID, tt.wantOK)
			}
		})
	}
}

func TestPickDrainingNeverPicked(t *testing.T) {
	nodes := threeNodes(500, 0, 0)
	nodes[1].Draining = true
	got := pickMany(t, nodes, 1000)
	if got[nodes[1].ID] != 0 {
		t.Fatalf("draining node picked %d times: %v", got[nodes[1].ID], got)
	}
	if got[nodes[0].ID] != 250 || got[nodes[2].ID] != 750 {
		t.Fatalf("picks %v, want 250 on the first node and 750 on the third", got)
	}
}

func TestPickIsPure(t *testing.T) {
	nodes := threeNodes(3, 1, 2)
	recent := map[string]int{nodes[1].ID: 5}
	before := fmt.Sprint(nodes, recent)
	Pick(nodes, recent)
	if after := fmt.Sprint(nodes, recent); after != before {
		t.Fatalf("Pick modified its input: %s → %s", before, after)
	}
}

// mutableView is a NodeView whose nodes a test replaces.
type mutableView struct {
	mu    sync.Mutex
	nodes []Node
}

func (v *mutableView) Nodes() []Node {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.nodes
}

func (v *mutableView) set(nodes []Node) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.nodes = nodes
}

func TestPickerSpreadsAndResets(t *testing.T) {
	view := &mutableView{nodes: threeNodes(0, 0, 0)}
	p := NewPicker(view, 1)
	got := map[string]int{}
	for range 3000 {
		n, ok := p.Pick("u")
		if !ok {
			t.Fatal("Pick: no node")
		}
		got[n.ID]++
	}
	for _, n := range view.Nodes() {
		if c := got[n.ID]; c < 999 || c > 1001 {
			t.Errorf("node %s got %d, want 1000±1 (%v)", n.ID, c, got)
		}
	}

	// The first node reports its 1000 clients; the others still report 0, so their
	// recent 1000 each still count, and all three stand at 1000: a tie.
	view.set(threeNodes(1000, 0, 0))
	_, recent := p.snapshot()
	if recent["im-0000000001"] != 0 || recent["im-0000000002"] != 1000 || recent["im-0000000003"] != 1000 {
		t.Fatalf("recent after count change = %v, want first reset, others kept", recent)
	}

	// Now the other two report theirs minus some that never connected: they get the
	// next picks until they are back to 1000.
	view.set(threeNodes(1000, 990, 995))
	got = map[string]int{}
	for range 15 {
		n, _ := p.Pick("u")
		got[n.ID]++
	}
	if got["im-0000000002"] != 10 || got["im-0000000003"] != 5 || got["im-0000000001"] != 0 {
		t.Fatalf("picks after refill = %v, want 10 on im-2 and 5 on im-3", got)
	}

	// A node that leaves is forgotten.
	view.set(threeNodes(1000, 1000))
	p.Pick("u")
	p.mu.Lock()
	_, seen := p.seen["im-0000000003"]
	p.mu.Unlock()
	if seen {
		t.Fatal("picker still tracks a node that left the view")
	}
}

func TestPickerNoNodes(t *testing.T) {
	for _, tt := range []struct {
		name string
		view NodeView
	}{
		{name: "nil view", view: nil},
		{name: "empty static", view: StaticView{}},
		{name: "func all draining", view: NodeViewFunc(func() []Node { return []Node{{ID: "a", Draining: true}} })},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if n, ok := NewPicker(tt.view, 1).Pick("u"); ok {
				t.Fatalf("Pick = %+v, want none", n)
			}
		})
	}
}

func TestPickerConcurrent(t *testing.T) {
	p := NewPicker(StaticView(threeNodes(0, 0, 0)), 1)
	const workers, each = 8, 300
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			local := map[string]int{}
			for range each {
				n, _ := p.Pick("u")
				local[n.ID]++
			}
			mu.Lock()
			for id, c := range local {
				got[id] += c
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for id, c := range got {
		if c != workers*each/3 {
			t.Errorf("node %s got %d, want %d (%v)", id, c, workers*each/3, got)
		}
	}
}

func TestPickerTieBreakIsSeeded(t *testing.T) {
	// Different dispatchers start the round at different nodes; each one is still
	// an exact round-robin.
	first := map[string]bool{}
	for range 64 {
		n, _ := NewPicker(StaticView(threeNodes(0, 0, 0)), 1).Pick("u")
		first[n.ID] = true
	}
	if len(first) < 2 {
		t.Fatalf("64 pickers all started at %v", first)
	}
}

func BenchmarkPick(b *testing.B) {
	for _, size := range []int{3, 100} {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) {
			nodes := make([]Node, size)
			for i := range nodes {
				nodes[i] = Node{ID: fmt.Sprintf("im-%010d", i), IP: "10.0.0.1", Port: 9000 + i, OnlineCounts: int64(1000 + i%7)}
			}
			p := NewPicker(StaticView(nodes), 1)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, ok := p.Pick("user"); !ok {
						b.Error("no node")
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "picks/s")
		})
	}
}

// TestPickerForgetsAssignmentsThatNeverShowUp: picks whose clients never connect (the
// node's count does not change) stop weighing on a node after recentTTL; before, a
// dispatcher that had handed out 8/17/16 such picks split the next 40 as 25/7/8.
func TestPickerForgetsAssignmentsThatNeverShowUp(t *testing.T) {
	nodes := threeNodes(0, 0, 0)
	p := NewPicker(StaticView(nodes), 1)
	now := time.Unix(1_790_000_000, 0)
	p.now = func() time.Time { return now }
	p.snapshot() // the first sync
	// Skewed leftovers: 8, 17 and 16 recent picks on nodes whose counts stay at 0.
	for i, n := range []int{8, 17, 16} {
		for range n {
			p.Pick("u")
		}
		p.ring[nodes[i].ID] = &recentRing{}
		p.ring[nodes[i].ID].slot[0] = now.UnixNano() / int64(recentSlot)
		p.ring[nodes[i].ID].n[0] = n
		p.recent[nodes[i].ID] = n
	}
	now = now.Add(recentTTL + time.Second)
	got := map[string]int{}
	for range 39 {
		n, _ := p.Pick("u")
		got[n.ID]++
	}
	for id, c := range got {
		if c != 13 {
			t.Errorf("after the leftovers expired, node %s got %d of 39 picks, want 13 (%v)", id, c, got)
		}
	}
}

// TestPickerBurstSpreadSeveralDispatchers: 10,000 picks within one second from one, two or three
// dispatchers over three idle nodes, the nodes' counts fixed or catching up once per simulated
// flush (100 ms, ~1,000 picks) with what had connected by the previous flush: every
// node gets within 1 % of an even share (the issue asks 10 %). Each picker is told how
// many dispatchers there are (NewPicker); with a weight of 1, three dispatchers with
// 100 ms flushes swung to 11 %.
func TestPickerBurstSpreadSeveralDispatchers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		dispatches int
		perFlush   int
	}{
		{"one dispatcher, counts fixed for the second", 1, 10_000},
		{"two dispatchers, counts fixed for the second", 2, 10_000},
		{"two dispatchers, 100 ms flushes", 2, 1_000},
		{"three dispatchers, counts fixed for the second", 3, 10_000},
		{"three dispatchers, 100 ms flushes", 3, 1_000},
		{"three dispatchers, 10 ms flushes", 3, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const total = 10_000
			view := &swapView{}
			view.set(threeNodes(0, 0, 0))
			pickers := make([]*Picker, tc.dispatches)
			for i := range pickers {
				pickers[i] = NewPicker(view, tc.dispatches)
			}
			got := map[string]int64{}
			connected := map[string]int64{} // what the nodes will report at the next flush
			rnd := rand.New(rand.NewPCG(1, 2))
			for i := range total {
				n, ok := pickers[rnd.IntN(len(pickers))].Pick("u")
				if !ok {
					t.Fatal("no node")
				}
				got[n.ID]++
				connected[n.ID]++
				if (i+1)%tc.perFlush == 0 {
					view.set(threeNodes(connected["im-0000000001"], connected["im-0000000002"], connected["im-0000000003"]))
				}
			}
			for id, c := range got {
				if d := float64(c) - total/3.0; d > total/3.0*0.01 || -d > total/3.0*0.01 {
					t.Errorf("node %s got %d of %d picks, more than 1%% from %d: %v", id, c, total, total/3, got)
				}
			}
			t.Logf("%d picks: %v", total, got)
		})
	}
}

// swapView is a NodeView whose slice the test replaces, as the registry watcher does.
type swapView struct{ p atomic.Pointer[[]Node] }

func (v *swapView) set(nodes []Node) { v.p.Store(&nodes) }
func (v *swapView) Nodes() []Node    { return *v.p.Load() }
