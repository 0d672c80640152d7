package dispatch_test

import (
	"fmt"
	"sync/atomic"

	"imgate/dispatch"
)

func ExamplePick() {
	nodes := []dispatch.Node{
		{ID: "im-0000000001", OnlineCounts: 100},
		{ID: "im-0000000002", OnlineCounts: 0},
		{ID: "im-0000000003", OnlineCounts: 0, Draining: true},
	}
	recent := map[string]int{"im-0000000002": 100}
	n, ok := dispatch.Pick(nodes, recent)
	fmt.Println(n.ID, ok) // a tie at 100: the lowest ID
	// Output: im-0000000001 true
}

func ExampleNodeViewFunc() {
	// A standalone process answers the dispatcher routes with its own node and its
	// live connection count.
	var online atomic.Int64
	self := dispatch.NodeViewFunc(func() []dispatch.Node {
		return []dispatch.Node{{ID: "standalone", IP: "127.0.0.1", Port: 875,
			OnlineCounts: online.Load(), WSURL: "ws://127.0.0.1:875/ws"}}
	})
	p := dispatch.NewPicker(self, 1)
	online.Store(3)
	n, _ := p.Pick("alice")
	fmt.Println(n.WSURL, n.OnlineCounts)
	// Output: ws://127.0.0.1:875/ws 3
}
