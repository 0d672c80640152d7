package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// Registry keeps this node registered in ZooKeeper as an EPHEMERAL_SEQUENTIAL znode
// /<ns>/server-list/im-NNNNNNNNNN and keeps its data current.
//
// SetDraining, ID and Epoch are safe from any goroutine and never block or do I/O. All
// ZooKeeper calls run on the registry's own goroutine, which reads the online count from
// Config.Online and flushes the data at most once per FlushInterval (only when it changed), and
// re-registers after a session expiry.
type Registry struct {
	cfg  Config
	log  *slog.Logger
	conn *zk.Conn
	dir  string // /<ns>/server-list
	self NodeInfo

	// Written by any goroutine, read by the run goroutine.
	draining atomic.Bool

	// Written by the run goroutine (and New before it starts), read by anyone.
	reg    atomic.Pointer[zkRegistration]
	writes atomic.Int64
	// drainWritten is the draining flag of the last successful write.
	drainWritten atomic.Bool

	// Owned by the run goroutine.
	written   zkWritten // what the znode holds now, as far as we know
	needWrite bool      // the last write failed: write on the next flush even if unchanged

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// zkRegistration is one registration: a znode created in one session.
type zkRegistration struct {
	path    string
	id      string
	epoch   int64
	session int64
}

// zkWritten is the mutable part of the znode data.
type zkWritten struct {
	online   int64
	draining bool
}

// New connects to ZooKeeper, ensures /<ns>/server-list exists and registers self.
// It fails with "registry: zookeeper <addr> unreachable: ..." when no session can be established
// within cfg.ConnectTimeout. Close it to deregister.
func New(ctx context.Context, cfg Config, self NodeInfo) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if self.IP == "" || self.Port <= 0 || self.Port > 65535 {
		return nil, fmt.Errorf("registry:: bad self address %q:%d", self.IP, self.Port)
	}
	cfg = cfg.withDefaults()
	conn, events, err := zkConnect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		cfg:  cfg,
		log:  cfg.Logger.With("component", "zk-registry"),
		conn: conn,
		dir:  cfg.serverListPath(),
		self: self,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	// The first registration is synchronous; a connection loss on the way is retried (register
	// adopts a znode that a lost create did make) until ConnectTimeout or ctx ends.
	deadline := time.Now().Add(cfg.ConnectTimeout)
	for {
		err = r.register()
		if err == nil {
			break
		}
		if !zkTransient(err) || time.Now().After(deadline) || ctx.Err() != nil {
			conn.Close()
			return nil, err
		}
		r.log.Warn("registration failed, retrying", "err", err)
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	go r.run(events)
	return r, nil
}

// ID returns the current znode name, e.g. "im-0000000003". It changes after a re-registration.
func (r *Registry) ID() string { return r.reg.Load().id }

// Epoch returns the sequence number of ID; it grows with every re-registration.
func (r *Registry) Epoch() int64 { return r.reg.Load().epoch }

// SetDraining marks the node as draining (or not); written on the next flush.
func (r *Registry) SetDraining(d bool) { r.draining.Store(d) }

// Drain marks the node as draining and waits until its znode says so (the next flush, at
// most FlushInterval away while ZooKeeper answers), so that the watchers, and the
// dispatchers' picks, see it before the node closes its clients. It returns ctx's error
// when ctx ends first; the flag is written later anyway.
func (r *Registry) Drain(ctx context.Context) error {
	r.SetDraining(true)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !r.drainWritten.Load() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("registry: draining flag not written: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Close deregisters: it stops the flusher, deletes the znode, then closes the session. If ctx
// ends first the session is closed anyway (ZooKeeper then removes the znode itself).
func (r *Registry) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		close(r.stop)
		select {
		case <-r.done:
		case <-ctx.Done():
			r.conn.Close() // unblocks a ZooKeeper call in flight
			<-r.done
			r.closeErr = fmt.Errorf("registry: close: %w", ctx.Err())
			return
		}
		reg := r.reg.Load()
		deleted := make(chan error, 1)
		go func() { deleted <- r.conn.Delete(reg.path, -1) }()
		select {
		case err := <-deleted:
			if err != nil && !errors.Is(err, zk.ErrNoNode) {
				r.closeErr = fmt.Errorf("registry: delete %s: %w", reg.path, err)
			}
		case <-ctx.Done():
			r.closeErr = fmt.Errorf("registry: delete %s: %w", reg.path, ctx.Err())
		}
		r.conn.Close()
		r.log.Info("deregistered", "id", reg.id)
	})
	return r.closeErr
}

// run is the registry goroutine: it flushes on every tick, and re-registers when the client
// holds a session other than the one the znode was created in (go-zookeeper silently opens a new
// session after an expiry and does not recreate ephemerals).
func (r *Registry) run(events <-chan zk.Event) {
	defer close(r.done)
	ticker := time.NewTicker(r.cfg.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case <-r.stop:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Type != zk.EventSession {
				continue
			}
			r.log.Debug("zookeeper state", "state", ev.State.String())
			if ev.State == zk.StateExpired {
				r.log.Warn("zookeeper session expired; re-registering on the next session", "id", r.ID())
			}
			if ev.State == zk.StateHasSession {
				r.reregisterIfNeeded()
			}
		case <-ticker.C:
			// Events are dropped when the library's small event channel is full, so the tick
			// also checks the session.
			r.reregisterIfNeeded()
			r.flush()
		}
	}
}

// reregisterIfNeeded registers anew when the live session is not the registration's session.
// Run goroutine only.
func (r *Registry) reregisterIfNeeded() {
	if r.conn.State() != zk.StateHasSession {
		return
	}
	old := r.reg.Load()
	if sess := r.conn.SessionID(); sess == old.session || sess == 0 {
		return
	}
	if err := r.register(); err != nil {
		r.log.Warn("re-registration failed; retrying on the next flush", "err", err)
		return
	}
	cur := r.reg.Load()
	r.log.Info("re-registered after session change", "old_id", old.id, "id", cur.id, "epoch", cur.epoch)
	if r.cfg.OnReregister != nil {
		r.cfg.OnReregister(cur.id, cur.epoch)
	}
}

// register creates (or adopts) the znode for the current session and writes its full data.
// Run goroutine only (or New before run starts).
func (r *Registry) register() error {
	sess := r.conn.SessionID()
	if err := zkEnsurePath(r.conn, r.dir); err != nil {
		return err
	}
	p, err := r.adoptOwn(sess)
	if err != nil {
		return err
	}
	if p == "" {
		data, err := r.marshal("", r.snapshot())
		if err != nil {
			return err
		}
		p, err = r.conn.Create(r.dir+"/"+zkNodePrefix, data, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
		if err != nil {
			// After a connection loss the create may have succeeded: the retry adopts it.
			return fmt.Errorf("registry: create under %s: %w", r.dir, err)
		}
	}
	id := path.Base(p)
	epoch, err := parseNodeEpoch(id)
	if err != nil {
		return err
	}
	r.reg.Store(&zkRegistration{path: p, id: id, epoch: epoch, session: sess})
	r.log.Info("registered", "id", id, "epoch", epoch, "ip", r.self.IP, "port", r.self.Port)
	// Fill in nodeId (unknown before the create) and the latest values.
	r.needWrite = true
	r.flush()
	return nil
}

// adoptOwn looks for znodes carrying our token. One created in session sess (a create whose
// reply was lost) is adopted and its path returned; any other one (an older session's, still
// present until the server removes it) is deleted.
func (r *Registry) adoptOwn(sess int64) (string, error) {
	children, _, err := r.conn.Children(r.dir)
	if err != nil {
		return "", fmt.Errorf("registry: list %s: %w", r.dir, err)
	}
	adopted := ""
	for _, c := range children {
		p := r.dir + "/" + c
		data, stat, err := r.conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("registry: get %s: %w", p, err)
		}
		var d zkNodeData
		if json.Unmarshal(data, &d) != nil || d.Token != r.cfg.Token {
			continue
		}
		if stat.EphemeralOwner == sess && adopted == "" {
			adopted = p
			r.log.Info("adopting own znode of this session", "path", p)
			continue
		}
		r.log.Info("deleting stale own znode", "path", p, "owner", fmt.Sprintf("%#x", stat.EphemeralOwner))
		if err := r.conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return "", fmt.Errorf("registry: delete stale %s: %w", p, err)
		}
	}
	return adopted, nil
}

// snapshot reads the current values: the online count from Config.Online, the draining flag.
func (r *Registry) snapshot() zkWritten {
	var online int64
	if r.cfg.Online != nil {
		online = r.cfg.Online()
	}
	return zkWritten{online: online, draining: r.draining.Load()}
}

// marshal renders the znode data.
func (r *Registry) marshal(id string, w zkWritten) ([]byte, error) {
	b, err := json.Marshal(zkNodeData{
		IP: r.self.IP, Port: r.self.Port, OnlineCounts: w.online, NodeID: id,
		Draining: w.draining, Token: r.cfg.Token, WSURL: r.self.WSURL, AdminURL: r.self.AdminURL,
	})
	if err != nil {
		return nil, fmt.Errorf("registry: marshal: %w", err)
	}
	return b, nil
}

// flush writes the znode if its values changed since the last successful write (or that write
// failed). Run goroutine only.
func (r *Registry) flush() {
	w := r.snapshot()
	if w == r.written && !r.needWrite {
		return
	}
	reg := r.reg.Load()
	data, err := r.marshal(reg.id, w)
	if err != nil {
		r.log.Error("flush", "err", err)
		return
	}
	if _, err := r.conn.Set(reg.path, data, -1); err != nil {
		r.needWrite = true
		r.log.Debug("flush failed; retrying on the next tick", "path", reg.path, "err", err)
		if errors.Is(err, zk.ErrNoNode) && r.conn.State() == zk.StateHasSession {
			// Our znode is gone although we hold a session (deleted by hand, or the session
			// changed and we have not noticed yet): register again.
			r.reg.Store(&zkRegistration{path: reg.path, id: reg.id, epoch: reg.epoch, session: -1})
		}
		return
	}
	r.writes.Add(1)
	r.written = w
	r.drainWritten.Store(w.draining)
	r.needWrite = false
}
