package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Watcher keeps an in-memory snapshot of every node registered under
// /<ns>/server-list, current through ZooKeeper child and data watches. After a reconnect it
// re-reads everything. Nodes never touches the network.
type Watcher struct {
	cfg  Config
	log  *slog.Logger
	conn *zk.Conn
	dir  string

	nodes atomic.Pointer[[]Node] // sorted by ID; never modified after Store

	cbMu sync.Mutex
	cbs  []func(added, removed []Node)

	// Owned by the run goroutine.
	byID       map[string]Node
	dataArmed  map[string]bool // a data watch is pending for this child
	childArmed bool            // a children watch is pending
	needResync bool
	notify     chan zk.Event // fired watches, forwarded by one goroutine per watch
	stop       chan struct{}
	done       chan struct{}
	closeOnce  sync.Once
	watchGroup sync.WaitGroup
}

// NewWatcher connects to ZooKeeper, ensures /<ns>/server-list exists, reads every node and
// keeps watching. cfg.Token, Online, OnReregister and FlushInterval are not used. Close it when
// done.
func NewWatcher(ctx context.Context, cfg Config) (*Watcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	conn, events, err := zkConnect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	w := &Watcher{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "zk-watcher"),
		conn:      conn,
		dir:       cfg.serverListPath(),
		byID:      map[string]Node{},
		dataArmed: map[string]bool{},
		notify:    make(chan zk.Event, 64),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	empty := []Node{}
	w.nodes.Store(&empty)
	if err := zkEnsurePath(conn, w.dir); err != nil {
		conn.Close()
		return nil, err
	}
	if err := w.resync(); err != nil {
		conn.Close()
		return nil, err
	}
	go w.run(events)
	return w, nil
}

// Nodes returns a copy of the current snapshot, sorted by ID. Safe from any goroutine; no I/O.
func (w *Watcher) Nodes() []Node {
	return slices.Clone(*w.nodes.Load())
}

// View returns the current snapshot itself, sorted by ID, without copying: the watcher
// replaces it on every change and never modifies it, so a caller may cache what it derives
// from it while View returns the same slice. Callers must not modify it.
func (w *Watcher) View() []Node {
	return *w.nodes.Load()
}

// OnChange registers fn to be called on the watcher goroutine whenever nodes appear or vanish
// (not for data-only changes such as counts; read Nodes for those). A node that re-registered
// after a session expiry shows up as its old ID removed and a new ID added with the same Token:
// a cleaner releasing resources by Token must check that no node in Nodes still carries it.
// fn must not block for long.
func (w *Watcher) OnChange(fn func(added, removed []Node)) {
	w.cbMu.Lock()
	w.cbs = append(w.cbs, fn)
	w.cbMu.Unlock()
}

// Close stops watching and closes the session.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		close(w.stop)
		<-w.done
		w.conn.Close() // closes every pending watch channel, ending the forwarders
		w.watchGroup.Wait()
	})
	return nil
}

// run is the watcher goroutine.
func (w *Watcher) run(events <-chan zk.Event) {
	defer close(w.done)
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		if w.needResync && w.conn.State() == zk.StateHasSession {
			if err := w.resync(); err != nil {
				w.log.Debug("resync failed; retrying", "err", err)
			}
		}
		select {
		case <-w.stop:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Type == zk.EventSession && ev.State == zk.StateHasSession {
				// Reconnected (same or new session): changes may have been missed.
				w.needResync = true
			}
		case ev := <-w.notify:
			w.handleWatch(ev)
		case <-retry.C:
			// needResync is retried at the top of the loop.
		}
	}
}

// handleWatch reacts to one fired watch. Run goroutine only.
func (w *Watcher) handleWatch(ev zk.Event) {
	if ev.Type == zk.EventNotWatching || ev.Err != nil {
		// The session expired or the client is closing: every watch is gone.
		w.childArmed = false
		clear(w.dataArmed)
		w.needResync = true
		return
	}
	if ev.Path == w.dir {
		w.childArmed = false
		if err := w.relist(); err != nil {
			w.needResync = true
			w.log.Debug("relist failed", "err", err)
		}
		return
	}
	id := strings.TrimPrefix(ev.Path, w.dir+"/")
	delete(w.dataArmed, id)
	if ev.Type == zk.EventNodeDeleted {
		return // the children watch reports the removal
	}
	rec, ok, err := w.fetch(id)
	if err != nil {
		w.needResync = true
		return
	}
	if !ok {
		return
	}
	if _, known := w.byID[id]; known {
		w.byID[id] = rec
		w.publish(nil, nil)
	}
}

// resync forgets which watches are armed only after an expiry (handled in handleWatch) and
// re-reads the child list and every child's data. Run goroutine only.
func (w *Watcher) resync() error {
	if err := w.relistAll(true); err != nil {
		return err
	}
	w.needResync = false
	return nil
}

// relist re-reads the child list, fetching new children only. Run goroutine only.
func (w *Watcher) relist() error { return w.relistAll(false) }

// relistAll reads the child list (arming the children watch if none is pending), fetches the
// data of new children (or of all when all is set), and publishes the differences.
func (w *Watcher) relistAll(all bool) error {
	var children []string
	var err error
	if w.childArmed {
		children, _, err = w.conn.Children(w.dir)
	} else {
		var ch <-chan zk.Event
		children, _, ch, err = w.conn.ChildrenW(w.dir)
		if err == nil {
			w.childArmed = true
			w.forward(ch)
		}
	}
	if errors.Is(err, zk.ErrNoNode) {
		// The tree was removed (by an operator or a test cleaning up): nothing is registered.
		// Watch for it to come back rather than recreating it.
		exists, _, ch, eerr := w.conn.ExistsW(w.dir)
		if eerr != nil {
			return fmt.Errorf("registry: watcher exists %s: %w", w.dir, eerr)
		}
		w.forward(ch)
		if exists {
			return fmt.Errorf("registry: watcher: %s reappeared while listing", w.dir)
		}
		w.childArmed = true // the exists watch fires on creation
		children, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("registry: watcher list %s: %w", w.dir, err)
	}
	present := make(map[string]bool, len(children))
	var added, removed []Node
	for _, id := range children {
		if !strings.HasPrefix(id, zkNodePrefix) {
			continue
		}
		present[id] = true
		_, known := w.byID[id]
		if known && !all {
			continue
		}
		rec, ok, err := w.fetch(id)
		if err != nil {
			return err
		}
		if !ok {
			delete(present, id)
			continue
		}
		w.byID[id] = rec
		if !known {
			added = append(added, rec)
		}
	}
	for id, rec := range w.byID {
		if !present[id] {
			delete(w.byID, id)
			delete(w.dataArmed, id)
			removed = append(removed, rec)
		}
	}
	w.publish(added, removed)
	return nil
}

// fetch reads one child's data, arming its data watch if none is pending. ok is false when
// the child is gone or its data does not parse. Run goroutine only.
func (w *Watcher) fetch(id string) (Node, bool, error) {
	p := w.dir + "/" + id
	var data []byte
	var err error
	if w.dataArmed[id] {
		data, _, err = w.conn.Get(p)
	} else {
		var ch <-chan zk.Event
		data, _, ch, err = w.conn.GetW(p)
		if err == nil {
			w.dataArmed[id] = true
			w.forward(ch)
		}
	}
	if errors.Is(err, zk.ErrNoNode) {
		return Node{}, false, nil
	}
	if err != nil {
		return Node{}, false, fmt.Errorf("registry: watcher get %s: %w", p, err)
	}
	rec, err := decodeNodeRecord(id, data)
	if err != nil {
		w.log.Warn("ignoring node with bad data", "id", id, "err", err)
		return Node{}, false, nil
	}
	return rec, true, nil
}

// forward hands the one event of a watch channel to the run goroutine.
func (w *Watcher) forward(ch <-chan zk.Event) {
	w.watchGroup.Add(1)
	go func() {
		defer w.watchGroup.Done()
		ev, ok := <-ch
		if !ok {
			return
		}
		select {
		case w.notify <- ev:
		case <-w.stop:
		}
	}()
}

// publish stores a new snapshot and calls the OnChange callbacks when nodes came or went.
// Run goroutine only.
func (w *Watcher) publish(added, removed []Node) {
	snap := make([]Node, 0, len(w.byID))
	for _, rec := range w.byID {
		snap = append(snap, rec)
	}
	slices.SortFunc(snap, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	w.nodes.Store(&snap)
	if len(added) == 0 && len(removed) == 0 {
		return
	}
	w.log.Info("nodes changed", "added", len(added), "removed", len(removed), "total", len(snap))
	w.cbMu.Lock()
	cbs := slices.Clone(w.cbs)
	w.cbMu.Unlock()
	for _, fn := range cbs {
		fn(added, removed)
	}
}
