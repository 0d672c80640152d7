package registry

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"
)

// zkLeakCheck fails the test if it leaves goroutines behind once its cleanups have run.
func zkLeakCheck(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // registered first, so it runs last
}

// zkNewRegistry starts a registry and closes it at cleanup.
func zkNewRegistry(t *testing.T, cfg Config, self NodeInfo) *Registry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := New(ctx, cfg, self)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.Close(ctx)
	})
	return r
}

// zkNewWatcher starts a watcher and closes it at cleanup.
func zkNewWatcher(t *testing.T, cfg Config) *Watcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := NewWatcher(ctx, cfg)
	if err != nil {
		t.Fatalf("NewWatcher: %v", err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// zkNodeData reads and decodes a znode.
func zkReadNode(t *testing.T, conn *zk.Conn, p string) (map[string]any, *zk.Stat) {
	t.Helper()
	b, stat, err := conn.Get(p)
	if err != nil {
		t.Fatalf("get %s: %v", p, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("znode %s data %q: %v", p, b, err)
	}
	return m, stat
}

// zkHasNode reports whether the snapshot holds id.
func zkHasNode(nodes []Node, id string) bool {
	return slices.ContainsFunc(nodes, func(n Node) bool { return n.ID == id })
}

func TestRegistryRegistersSequentialNodeWithJSON(t *testing.T) {
	zkLeakCheck(t)
	cfg, conn := zkTestConfig(t)
	var online atomic.Int64
	cfg.Online = online.Load
	r := zkNewRegistry(t, cfg, NodeInfo{IP: "127.0.0.1", Port: 875})

	if !regexp.MustCompile(`^im-\d{10}$`).MatchString(r.ID()) {
		t.Fatalf("ID() = %q, want im-NNNNNNNNNN", r.ID())
	}
	epoch, err := parseNodeEpoch(r.ID())
	if err != nil || epoch != r.Epoch() {
		t.Fatalf("Epoch() = %d, parseNodeEpoch(%q) = %d, %v", r.Epoch(), r.ID(), epoch, err)
	}
	dir := "/" + cfg.Namespace + "/server-list"
	children, _, err := conn.Children(dir)
	if err != nil || len(children) != 1 || children[0] != r.ID() {
		t.Fatalf("children of %s = %v, %v; want [%s]", dir, children, err, r.ID())
	}
	m, stat := zkReadNode(t, conn, dir+"/"+r.ID())
	if stat.EphemeralOwner == 0 {
		t.Errorf("znode is not ephemeral")
	}
	want := map[string]any{"ip": "127.0.0.1", "port": 875.0, "onlineCounts": 0.0, "nodeId": r.ID(), "draining": false}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("data[%q] = %v, want %v (data %v)", k, m[k], v, m)
		}
	}
	if tok, _ := m["token"].(string); tok == "" || tok != r.cfg.Token {
		t.Errorf("data token = %q, want %q", tok, r.cfg.Token)
	}

	// Draining and counts reach the znode through the flusher.
	r.SetDraining(true)
	online.Store(42)
	zkWaitFor(t, 5*time.Second, "draining and count in the znode", func() bool {
		m, _ := zkReadNode(t, conn, dir+"/"+r.ID())
		return m["draining"] == true && m["onlineCounts"] == 42.0
	})
}

func TestRegistryBatchesOnlineCountWrites(t *testing.T) {
	cfg, conn := zkTestConfig(t)
	var online atomic.Int64 // what the event loops would update; the registry pulls it
	cfg.Online = online.Load
	r := zkNewRegistry(t, cfg, NodeInfo{IP: "127.0.0.1", Port: 885})
	p := "/" + cfg.Namespace + "/server-list/" + r.ID()

	before := r.writes.Load()
	start := time.Now()
	const goroutines, perG = 4, 2500 // 10,000 calls, as event loops would make them
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				online.Store(int64(g*perG + i))
			}
		})
	}
	wg.Wait()
	online.Store(10000)
	zkWaitFor(t, 5*time.Second, "onlineCounts 10000 in the znode, and the write counted", func() bool {
		// The count is taken after the write returns: the znode can show the value first.
		m, _ := zkReadNode(t, conn, p)
		return m["onlineCounts"] == 10000.0 && r.writes.Load() > before
	})
	elapsed := time.Since(start)
	writes := r.writes.Load() - before
	limit := int64(elapsed/cfg.FlushInterval) + 1
	t.Logf("10,000 count changes in %v → %d writes (limit %d)", elapsed, writes, limit)
	if writes < 1 || writes > limit {
		t.Fatalf("writes = %d, want 1..%d", writes, limit)
	}

	// An unchanged value is not rewritten.
	settled := r.writes.Load()
	time.Sleep(5 * cfg.FlushInterval) // observing an absence: nothing to poll for
	if got := r.writes.Load(); got != settled {
		t.Fatalf("writes went from %d to %d without a change", settled, got)
	}
}

func TestRegistryCloseRemovesNodeAndWatcherSeesIt(t *testing.T) {
	zkLeakCheck(t)
	cfg, conn := zkTestConfig(t)
	w := zkNewWatcher(t, cfg)
	var mu sync.Mutex
	var removed []Node
	w.OnChange(func(_, rm []Node) {
		mu.Lock()
		removed = append(removed, rm...)
		mu.Unlock()
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var online atomic.Int64
	rcfg := cfg
	rcfg.Online = online.Load
	r, err := New(ctx, rcfg, NodeInfo{IP: "127.0.0.1", Port: 895})
	if err != nil {
		t.Fatal(err)
	}
	id := r.ID()
	online.Store(3)
	zkWaitFor(t, 5*time.Second, "watcher sees the node with its count", func() bool {
		for _, n := range w.Nodes() {
			if n.ID == id {
				return n.IP == "127.0.0.1" && n.Port == 895 && n.OnlineCounts == 3 && n.Epoch == r.Epoch() &&
					n.Token == r.cfg.Token
			}
		}
		return false
	})

	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ok, _, err := conn.Exists("/" + cfg.Namespace + "/server-list/" + id); err != nil || ok {
		t.Fatalf("znode after Close: exists=%v err=%v", ok, err)
	}
	zkWaitFor(t, 5*time.Second, "watcher reports the node removed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return zkHasNode(removed, id) && !zkHasNode(w.Nodes(), id)
	})
	if err := r.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestRegistryReregistersAfterSessionExpiry(t *testing.T) {
	cfg, conn := zkTestConfig(t)
	w := zkNewWatcher(t, cfg)

	cut := &zkCutter{}
	rcfg := cfg
	rcfg.Dialer = cut.Dial
	rereg := make(chan [2]any, 4)
	rcfg.OnReregister = func(id string, epoch int64) { rereg <- [2]any{id, epoch} }
	var online atomic.Int64
	rcfg.Online = online.Load
	r := zkNewRegistry(t, rcfg, NodeInfo{IP: "127.0.0.1", Port: 905})
	oldID, oldEpoch := r.ID(), r.Epoch()
	dir := "/" + cfg.Namespace + "/server-list"
	zkWaitFor(t, 5*time.Second, "watcher sees the first registration", func() bool { return zkHasNode(w.Nodes(), oldID) })

	// Cut the registry off until the server expires its session (its ephemeral znode vanishes).
	cut.Cut()
	zkWaitFor(t, 20*time.Second, "server expires the session and removes "+oldID, func() bool {
		ok, _, err := conn.Exists(dir + "/" + oldID)
		return err == nil && !ok
	})
	cut.Heal()

	var got [2]any
	select {
	case got = <-rereg:
	case <-time.After(15 * time.Second):
		t.Fatal("no OnReregister within 15s after the session expired")
	}
	newID, newEpoch := got[0].(string), got[1].(int64)
	if newID == oldID || newEpoch <= oldEpoch || r.ID() != newID || r.Epoch() != newEpoch {
		t.Fatalf("after expiry: OnReregister(%s, %d), ID()=%s Epoch()=%d; before %s/%d",
			newID, newEpoch, r.ID(), r.Epoch(), oldID, oldEpoch)
	}
	m, _ := zkReadNode(t, conn, dir+"/"+newID)
	if m["nodeId"] != newID || m["token"] != r.cfg.Token {
		t.Fatalf("new znode data %v", m)
	}
	zkWaitFor(t, 5*time.Second, "watcher sees the new node and not the old", func() bool {
		nodes := w.Nodes()
		return zkHasNode(nodes, newID) && !zkHasNode(nodes, oldID)
	})
	children, _, err := conn.Children(dir)
	if err != nil || len(children) != 1 {
		t.Fatalf("children after re-registration = %v, %v; want exactly one", children, err)
	}

	// The flusher writes to the new znode.
	online.Store(7)
	zkWaitFor(t, 5*time.Second, "count in the new znode", func() bool {
		m, _ := zkReadNode(t, conn, dir+"/"+newID)
		return m["onlineCounts"] == 7.0
	})
}

func TestRegistryDeletesStaleOwnNodeAndAdoptsOwnCreate(t *testing.T) {
	cfg, conn := zkTestConfig(t)
	dir := "/" + cfg.Namespace + "/server-list"
	if err := zkEnsurePath(conn, dir); err != nil {
		t.Fatal(err)
	}
	// A znode with our token from another session: what an expired session may leave briefly.
	token := NewToken()
	data, _ := json.Marshal(zkNodeData{IP: "127.0.0.1", Port: 915, Token: token})
	stale, err := conn.Create(dir+"/im-", data, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Token = token
	r := zkNewRegistry(t, cfg, NodeInfo{IP: "127.0.0.1", Port: 915})
	if ok, _, _ := conn.Exists(stale); ok {
		t.Fatalf("stale znode %s of another session still present", stale)
	}
	if strings.HasSuffix(stale, r.ID()) {
		t.Fatalf("registry took over the stale znode %s", stale)
	}

	// A second registration in the same session (a retried create whose reply was lost) adopts
	// the existing znode instead of creating another. Stop the run goroutine to own the state.
	close(r.stop)
	<-r.done
	id := r.ID()
	if err := r.register(); err != nil {
		t.Fatal(err)
	}
	children, _, _ := conn.Children(dir)
	if r.ID() != id || len(children) != 1 {
		t.Fatalf("second register: ID %s (was %s), children %v", r.ID(), id, children)
	}
	r.closeOnce.Do(func() { r.conn.Close() })
}

func TestRegistryUnreachableFailsClearly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := New(ctx, Config{Servers: []string{"127.0.0.1:1"}, ConnectTimeout: time.Second},
		NodeInfo{IP: "127.0.0.1", Port: 875})
	if err == nil || !strings.Contains(err.Error(), "registry: zookeeper 127.0.0.1:1 unreachable") {
		t.Fatalf("err = %v, want registry: zookeeper 127.0.0.1:1 unreachable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestZKConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{name: "defaults", cfg: Config{Servers: []string{"127.0.0.1:2181"}}, ok: true},
		{name: "no servers", cfg: Config{}},
		{name: "bad server", cfg: Config{Servers: []string{"nohost"}}},
		{name: "leading slash", cfg: Config{Servers: []string{"a:1"}, Namespace: "/imgate"}},
		{name: "nested", cfg: Config{Servers: []string{"a:1"}, Namespace: "a/b"}, ok: true},
		{name: "dot segment", cfg: Config{Servers: []string{"a:1"}, Namespace: "a/../b"}},
		{name: "short session", cfg: Config{Servers: []string{"a:1"}, SessionTimeout: time.Millisecond}},
		{name: "negative flush", cfg: Config{Servers: []string{"a:1"}, FlushInterval: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestRegistryAdvertisesURLsAndDrainWaitsForTheWrite checks the additive fields: wsUrl and
// adminUrl sit beside the original ip, port and onlineCounts, a watcher reads them, and
// Drain returns only once the znode says draining.
func TestRegistryAdvertisesURLsAndDrainWaitsForTheWrite(t *testing.T) {
	zkLeakCheck(t)
	cfg, conn := zkTestConfig(t)
	cfg.FlushInterval = 300 * time.Millisecond
	info := NodeInfo{IP: "10.0.0.5", Port: 8875, WSURL: "wss://im.example.com/n1/ws", AdminURL: "http://10.0.0.5:8081"}
	r := zkNewRegistry(t, cfg, info)
	dir := "/" + cfg.Namespace + "/server-list"
	m, _ := zkReadNode(t, conn, dir+"/"+r.ID())
	want := map[string]any{"ip": "10.0.0.5", "port": 8875.0, "onlineCounts": 0.0, "draining": false,
		"wsUrl": info.WSURL, "adminUrl": info.AdminURL}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("data[%q] = %v, want %v (data %v)", k, m[k], v, m)
		}
	}
	w, err := NewWatcher(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Close() }()
	zkWaitFor(t, 5*time.Second, "the watcher reads the URLs", func() bool {
		ns := w.Nodes()
		return len(ns) == 1 && ns[0].WSURL == info.WSURL && ns[0].AdminURL == info.AdminURL
	})

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := r.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	// No wait here: Drain returned, so the znode holds the flag already.
	if m, _ := zkReadNode(t, conn, dir+"/"+r.ID()); m["draining"] != true {
		t.Fatalf("Drain returned but the znode says %v", m)
	}
	zkWaitFor(t, 5*time.Second, "the watcher sees draining", func() bool {
		ns := w.Nodes()
		return len(ns) == 1 && ns[0].Draining
	})
}
