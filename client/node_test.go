package client_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"imgate/dispatch"
	"imgate/saver"
	"imgate/server"
)

// testNode is the standalone wiring in-process (store → batcher → node, and a dispatcher
// answering with the node), restartable: stop shuts the node down (close 1001 to every
// client) and start brings a new one up on the same port over the same store, as a
// restarted `imgate standalone` would. While it is down the dispatcher answers 503.
type testNode struct {
	t     testing.TB
	cfg   server.Config
	store saver.Store

	mu      sync.Mutex // guards srv and batcher: the dispatcher's view reads srv
	srv     *server.Server
	batcher *saver.Batcher

	disp *dispatch.Server
}

// startNode starts a node (cfg.Addr forced to 127.0.0.1:0 the first time) on store (nil:
// a fresh saver.Memory) and its dispatcher. Both stop when the test ends.
func startNode(t testing.TB, cfg server.Config, store saver.Store) *testNode {
	t.Helper()
	if store == nil {
		store = saver.NewMemory()
	}
	cfg.Addr = "127.0.0.1:0"
	if cfg.EventLoops == 0 {
		cfg.EventLoops = 2
	}
	n := &testNode{t: t, cfg: cfg, store: store}
	n.start()
	view := dispatch.NodeViewFunc(func() []dispatch.Node {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.srv == nil {
			return nil
		}
		ip, port := n.srv.AdvertiseAddr()
		return []dispatch.Node{{ID: n.srv.NodeID(), IP: ip, Port: port, OnlineCounts: n.srv.Online(), WSURL: n.srv.WSURL()}}
	})
	disp, err := dispatch.New(dispatch.Config{Addr: "127.0.0.1:0"}, dispatch.Deps{Nodes: view, History: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := disp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	n.disp = disp
	t.Cleanup(func() {
		n.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = disp.Shutdown(ctx)
	})
	return n
}

// start brings the node up (on the port of the previous one, if any).
func (n *testNode) start() {
	n.t.Helper()
	b := saver.NewBatcher(n.store, saver.BatcherConfig{})
	srv, err := server.New(n.cfg, server.Deps{Outbox: b, Inbox: n.store})
	if err != nil {
		n.t.Fatal(err)
	}
	b.Start(srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		n.t.Fatal(err)
	}
	n.cfg.Addr = srv.Addr().String()
	n.mu.Lock()
	n.srv, n.batcher = srv, b
	n.mu.Unlock()
}

// stop shuts the node down: every client gets 1001.
func (n *testNode) stop() {
	n.mu.Lock()
	srv, b := n.srv, n.batcher
	n.srv, n.batcher = nil, nil
	n.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		n.t.Errorf("node shutdown: %v", err)
	}
	if err := b.Close(ctx); err != nil {
		n.t.Errorf("batcher close: %v", err)
	}
}

// server returns the running node (nil while stopped).
func (n *testNode) server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

func (n *testNode) wsURL() string      { return "ws://" + n.cfg.Addr + "/ws" }
func (n *testNode) dispatcher() string { return "http://" + n.disp.Addr().(*net.TCPAddr).String() }

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
