package dispatch

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// listenNodes opens n listeners on 127.0.0.1 and returns them with a view of them.
func listenNodes(t *testing.T, n int) ([]net.Listener, StaticView) {
	t.Helper()
	lns := make([]net.Listener, n)
	view := make(StaticView, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		go func() { // accept and close, as a node would close a silent probe
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
			}
		}()
		lns[i] = ln
		view[i] = Node{ID: "im-" + strconv.Itoa(i), IP: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
	}
	return lns, view
}

func ids(nodes []Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	return out
}

// TestProbedViewHidesDeadNode closes one node's listener (what the kernel does for a
// SIGKILLed process): the view and the picks drop it without any change of the inner
// view, and show it again once it listens again.
func TestProbedViewHidesDeadNode(t *testing.T) {
	lns, inner := listenNodes(t, 3)
	v := NewProbedView(inner, ProbeConfig{Interval: 10 * time.Millisecond, Timeout: time.Second})
	v.Start()
	defer v.Close()
	p := NewPicker(v, 1)

	if got := v.Nodes(); len(got) != 3 {
		t.Fatalf("before any probe: %v, want every node", ids(got))
	}
	dead := inner[1]
	_ = lns[1].Close()
	waitFor(t, 5*time.Second, "the closed node is hidden", func() bool { return v.hidden(dead.ID) })
	if got := ids(v.Nodes()); len(got) != 2 || got[0] != "im-0" || got[1] != "im-2" {
		t.Fatalf("view with im-1 dead: %v", got)
	}
	for range 30 {
		n, ok := p.Pick("u")
		if !ok || n.ID == dead.ID {
			t.Fatalf("pick with im-1 dead: %v %v", n.ID, ok)
		}
	}

	ln, err := net.Listen("tcp", net.JoinHostPort(dead.IP, strconv.Itoa(dead.Port)))
	if err != nil {
		t.Fatalf("cannot listen on the dead node's port again: %v", err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	waitFor(t, 5*time.Second, "the node listening again is shown", func() bool { return len(v.Nodes()) == 3 })
}

// TestProbedViewAllDead: with every node refusing, the picker has nothing to answer.
func TestProbedViewAllDead(t *testing.T) {
	lns, inner := listenNodes(t, 2)
	for _, ln := range lns {
		_ = ln.Close()
	}
	v := NewProbedView(inner, ProbeConfig{Interval: 10 * time.Millisecond})
	v.Start()
	defer v.Close()
	p := NewPicker(v, 1)
	waitFor(t, 5*time.Second, "every node hidden", func() bool { _, ok := p.Pick("u"); return !ok })
}

// TestProbedViewLocalErrors: a dial error of the dispatcher's own (out of file
// descriptors) says nothing about the node, which stays shown.
func TestProbedViewLocalErrors(t *testing.T) {
	_, inner := listenNodes(t, 1)
	var dials atomic.Int64
	v := NewProbedView(inner, ProbeConfig{Interval: 5 * time.Millisecond, Failures: 1,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			dials.Add(1)
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.EMFILE}
		}})
	v.Start()
	defer v.Close()
	waitFor(t, 5*time.Second, "ten probes", func() bool { return dials.Load() >= 10 })
	if len(v.Nodes()) != 1 {
		t.Fatal("a local dial error hid the node")
	}
}

// TestProbedViewSameSlice: Nodes returns the same slice while nothing changed, so the
// Picker keeps its recent assignments; a hidden node changes it.
func TestProbedViewSameSlice(t *testing.T) {
	lns, inner := listenNodes(t, 2)
	v := NewProbedView(inner, ProbeConfig{Interval: 10 * time.Millisecond})
	v.Start()
	defer v.Close()
	a, b := v.Nodes(), v.Nodes()
	if !sameSlice(a, b) {
		t.Fatal("Nodes built a new slice without a change")
	}
	_ = lns[0].Close()
	waitFor(t, 5*time.Second, "the closed node is hidden", func() bool { return len(v.Nodes()) == 1 })
}

func TestNodeFault(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"timeout", context.DeadlineExceeded, true},
		{"unreachable", &net.OpError{Op: "dial", Err: syscall.EHOSTUNREACH}, true},
		{"out of files", &net.OpError{Op: "dial", Err: syscall.EMFILE}, false},
		{"out of ports", &net.OpError{Op: "dial", Err: syscall.EADDRNOTAVAIL}, false},
	} {
		if got := nodeFault(tc.err); got != tc.want {
			t.Errorf("%s: nodeFault(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
