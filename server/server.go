package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"

	"imgate/codec"
	"imgate/message"
)

// Outbox takes accepted content messages from the node: the group-commit batcher in a
// standalone process, the save queue in a cluster. It reports each persisted message
// back through Server.Saved and each failure through Server.Failed (the node is its
// [message.Sink]). Submit is called on event loops: it must not block.
type Outbox interface {
	Submit(r message.Record) error
}

// Relay carries live-only messages (SIGNED receipts) to every node, which deliver them
// through Server.Saved. Relay is called on event loops: it must not block.
type Relay interface {
	Relay(r message.Record) error
}

// Presence learns which users are connected to this node. Its methods are called on
// event loops: they must not block.
type Presence interface {
	Connected(userID string)
	Disconnected(userID string)
	// Sync returns once every Connected called before it is visible to the rest of
	// the cluster (or ctx ends, or the write failed). A replay worker calls it before
	// it reads the store for a CONNECT_INIT: with routed delivery a message is sent only
	// to the nodes presence names, so a message committed while a device binds is
	// either routed here (presence was visible when the saver looked) or committed
	// before the replay reads (it was not yet visible, so the commit came first).
	Sync(ctx context.Context) error
}

// OfflineHook hears of persisted messages whose recipient had no connected device when
// the node delivered them: the offline webhook. Enqueue is called on the goroutine that
// reports persisted batches (never an event loop), once per batch, after the batch's
// frames were handed to the loops; it must not block, and it may not keep batch.
type OfflineHook interface {
	Enqueue(batch []message.Offline)
}

// Deps are the parts a node talks to. Every one may be nil; the doc of each field says
// what nil means.
type Deps struct {
	// Outbox persists accepted content messages. Nil means live delivery without a
	// store (--store none): the node hands each message straight to its own Saved, so
	// the ACK means only that the node accepted it (at-most-once) and a resent
	// clientMsgId is not detected.
	Outbox Outbox
	// Inbox serves replay and the newest seq. Nil means no durable store: no replay,
	// CONNECT_INIT is acknowledged with seq 0.
	Inbox Inbox
	// Relay carries SIGNED receipts to every node. Nil means this node only: the node
	// delivers each receipt through its own Saved.
	Relay Relay
	// Presence is told about users binding and leaving; nil for none.
	Presence Presence
	// Groups fills the node's group membership cache, which refuses a non-member's
	// group message on the node (groupcache.go); nil for none: the saver checks alone.
	Groups GroupSource
	// Offline is told about each persisted content message whose receiver (not its
	// sender) has no device on this node; nil for none. Only a node that holds every
	// device may have one (standalone): a cluster node sees only its own devices, and
	// the saver reports offline recipients from presence instead.
	Offline OfflineHook
}

var _ message.Sink = (*Server)(nil)

// Server is one imgate node: the gnet engine and imgate's state around it.
type Server struct {
	cfg      Config
	log      *slog.Logger
	ids      *Snowflake
	sessions *sessions
	replays  *replayer
	gaps     *gapTracker // nil unless RepairGaps
	outbox   Outbox      // nil: live delivery through s.Saved
	inbox    Inbox
	relay    Relay // nil: this node only, through s.Saved
	presence Presence
	offline  OfflineHook // nil: none (deliver.go checks it in one place, noteOffline)
	groups   *groupCache // nil: no membership cache, the saver checks alone

	// advertisePort is set once Start knows the bound port; loops read it concurrently.
	advertisePort atomic.Int64

	connSeq  atomic.Uint64
	online   atomic.Int64
	draining atomic.Bool
	stopping atomic.Bool // Shutdown was called
	stats    counters
	syncWarn logEvery // presence not visible before a replay
	gnetWarn logEvery // gnet's warnings and errors (gnetlog.go)
	slowWarn logEvery // the slow replay pool is full

	origins     atomic.Pointer[originPolicy] // which browser Origins may upgrade (origin.go)
	originWarn  logEvery                     // an upgrade refused for its Origin
	pending     *pendingIPs                  // connections before CONNECT_INIT per source IP (pending.go)
	pendingWarn logEvery                     // a connection refused by the pending cap

	loopsMu sync.Mutex
	loops   map[gnet.EventLoop]*loop // guarded by loopsMu

	eng     gnet.Engine
	addr    net.Addr
	bootCh  chan struct{}
	runErr  chan error
	stopped chan struct{}
}

// counters are the node's statistics.
type counters struct {
	open      atomic.Int64
	accepted  atomic.Int64
	refused   atomic.Int64
	delivered atomic.Int64
	replayed  atomic.Int64
	repaired  atomic.Int64
	closes    [closeReset + 1]atomic.Int64

	newestReads  atomic.Int64                  // store reads of newest seqs (replay.go: one per batch)
	acceptErrors atomic.Int64                  // accepts that failed (gnetlog.go)
	binds        atomic.Int64                  // CONNECT_INITs that bound a connection
	errors       [len(errorCodes)]atomic.Int64 // ERROR answers by code (metrics.go)
	queued       atomic.Int64                  // bytes in every loop queue
	persisted    histogram                     // accept → ACK queued (persisted)
	written      histogram                     // accept → ACK written to the socket
	closeLogs    [closeReset + 1]closeLog      // rate-limited close lines (closelog.go)
}

// New returns a node configured by cfg. It does not listen yet: call Start.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ids, err := NewSnowflake(cfg.WorkerID)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		ids:      ids,
		sessions: newSessions(),
		outbox:   deps.Outbox,
		inbox:    deps.Inbox,
		relay:    deps.Relay,
		presence: deps.Presence,
		offline:  deps.Offline,
		loops:    make(map[gnet.EventLoop]*loop),
		syncWarn: logEvery{interval: 10 * time.Second},
		slowWarn: logEvery{interval: 10 * time.Second},
		gnetWarn: logEvery{interval: gnetLogEvery},

		originWarn:  logEvery{interval: 10 * time.Second},
		pending:     newPendingIPs(cfg.MaxPendingPerIP),
		pendingWarn: logEvery{interval: 10 * time.Second},
		bootCh:      make(chan struct{}),
		runErr:      make(chan error, 1),
		stopped:     make(chan struct{}),
	}
	if cfg.RepairGaps && deps.Inbox != nil {
		s.gaps = newGapTracker(s, cfg.GapDelay)
	}
	for i := range s.stats.closeLogs {
		s.stats.closeLogs[i].every.interval = closeLogInterval
	}
	s.origins.Store(newOriginPolicy(cfg.AllowedOrigins))
	s.connSeq.Store(uint64(cfg.WorkerID) << 48)
	s.replays = newReplayer(s)
	if cfg.GroupCacheMembers > 0 {
		s.groups = newGroupCache(deps.Groups, cfg.GroupCacheTTL, cfg.GroupCacheMembers, cfg.Logger)
	}
	return s, nil
}

// Start binds the WebSocket address and returns once the event loops serve it.
func (s *Server) Start(ctx context.Context) error {
	s.replays.start()
	if s.groups != nil {
		s.groups.start()
	}
	h := &handler{srv: s}
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithReuseAddr(true),
		gnet.WithTicker(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{l: s.log, srv: s}),
		gnet.WithReadBufferCap(64 << 10),
	}
	if s.cfg.EventLoops > 0 {
		opts = append(opts, gnet.WithNumEventLoop(s.cfg.EventLoops))
	}
	go func() {
		err := gnet.Run(h, "tcp://"+s.cfg.Addr, opts...)
		s.runErr <- err
		close(s.stopped)
	}()
	select {
	case <-s.bootCh:
	case err := <-s.runErr:
		s.stopWorkers()
		return fmt.Errorf("server: listen on %s: %w", s.cfg.Addr, err)
	case <-ctx.Done():
		s.stopWorkers() // the engine may still come up; Shutdown stops it
		return ctx.Err()
	}
	addr, err := listenerAddr(s.eng)
	if err != nil {
		return err
	}
	s.addr = addr
	port := s.cfg.AdvertisePort
	if port == 0 {
		port = addr.(*net.TCPAddr).Port
	}
	s.advertisePort.Store(int64(port))
	s.log.Info("websocket listening", "addr", addr.String(), "path", s.cfg.Path, "node", s.cfg.NodeID)
	return nil
}

// listenerAddr reads the bound address of the engine's listener (the port may have been 0).
func listenerAddr(eng gnet.Engine) (net.Addr, error) {
	fd, err := eng.Dup()
	if err != nil {
		return nil, fmt.Errorf("server: listener address: %w", err)
	}
	defer func() { _ = unix.Close(fd) }()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("server: listener address: %w", err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}, nil
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}, nil
	}
	return nil, errors.New("server: listener address: unknown socket family")
}

func (s *Server) booted(eng gnet.Engine) {
	s.eng = eng
	close(s.bootCh)
}

// Addr is the bound WebSocket address (after Start).
func (s *Server) Addr() net.Addr { return s.addr }

// NodeID is the node's id.
func (s *Server) NodeID() string { return s.cfg.NodeID }

// Online is the number of connections bound to a user. Any goroutine may call it: the
// cluster registry reads it to publish the node's load.
func (s *Server) Online() int64 { return s.online.Load() }

// Draining reports whether the node stopped taking connections.
func (s *Server) Draining() bool { return s.draining.Load() }

// Stats is a snapshot of the node's counters.
type Stats struct {
	Open, Online, Accepted, Refused, Delivered, Replayed, Repaired int64
	Closes                                                         map[string]int64

	// Binds counts the connections CONNECT_INIT bound; Errors the ERROR answers by
	// code (codec.Code*); QueuedBytes is what the loop queues hold for their
	// connections now (not yet handed to the socket).
	// AcceptErrors counts the accepts that failed (out of file descriptors, say).
	// NewestReads counts the store reads of newest seqs: one serves every CONNECT_INIT
	// (and repair to the newest) a replay worker took at once, so Binds / NewestReads
	// is about the mean batch.
	Binds, AcceptErrors, NewestReads int64
	Errors                           map[string]int64
	QueuedBytes                      int64
	// Persisted and Written measure a message from its accept (its chatTime) to its
	// ACK being queued (it came back persisted) and to the ACK being written to the
	// sender's socket, on the accepting node.
	Persisted, Written Histogram
	// GroupChecks counts the group messages the membership cache answered, by answer:
	// "member", "non_member" (refused on the node), "miss" (left to the saver) and
	// "load_dropped" (a miss whose load did not fit the load queue). Nil without a cache.
	GroupChecks map[string]int64
}

// CloseCode is the WebSocket close code sent for the close reason label (a key of
// Stats().Closes); 0 for refusals before the upgrade and resets.
func CloseCode(label string) int {
	for _, r := range closeReasons {
		if r.label == label {
			return int(r.code)
		}
	}
	return 0
}

// Stats returns the node's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Open: s.stats.open.Load(), Online: s.online.Load(), Accepted: s.stats.accepted.Load(),
		Refused: s.stats.refused.Load(), Delivered: s.stats.delivered.Load(),
		Replayed: s.stats.replayed.Load(), Repaired: s.stats.repaired.Load(), Closes: map[string]int64{},
	}
	for r := range s.stats.closes {
		if n := s.stats.closes[r].Load(); n > 0 {
			st.Closes[closeReason(r).String()] = n
		}
	}
	st.AcceptErrors, st.NewestReads = s.stats.acceptErrors.Load(), s.stats.newestReads.Load()
	st.Binds, st.QueuedBytes, st.Errors = s.stats.binds.Load(), s.stats.queued.Load(), make(map[string]int64, len(errorCodes))
	for i, code := range errorCodes {
		st.Errors[code] = s.stats.errors[i].Load()
	}
	st.Persisted, st.Written = s.stats.persisted.snapshot(), s.stats.written.snapshot()
	if g := s.groups; g != nil {
		st.GroupChecks = map[string]int64{"member": g.hits.Load(), "non_member": g.refused.Load(), "miss": g.misses.Load(), "load_dropped": g.dropped.Load()}
	}
	return st
}

func (s *Server) countClose(r closeReason) { s.stats.closes[r].Add(1) }

// Shutdown stops taking connections, closes every client with 1001, waits (until ctx
// ends) for them to go, and stops the engine.
//
// Drain first closes the clients over a window instead of all at once; Shutdown after
// Drain closes whoever is left and stops.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.stopping.Swap(true) {
		<-s.stopped
		return nil
	}
	s.draining.Store(true)
	for _, l := range s.loopList() {
		_ = l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			l.closeAll(closeGoingAway)
			return nil
		}))
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.stats.open.Load() > 0 {
		select {
		case <-ctx.Done():
			s.log.Warn("shutdown: connections still open", "open", s.stats.open.Load())
		case <-t.C:
			continue
		}
		break
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.eng.Stop(stopCtx)
	<-s.stopped
	s.stopWorkers()
	if err != nil {
		return fmt.Errorf("server: stop: %w", err)
	}
	s.log.Info("websocket stopped", "addr", s.addr.String())
	return nil
}

// stopWorkers stops the goroutines Start started beside the engine.
func (s *Server) stopWorkers() {
	s.replays.close()
	if s.groups != nil {
		s.groups.close()
	}
}

func (s *Server) nextConnID() uint64 { return s.connSeq.Add(1) }

// loopOf returns imgate's state of the event loop el, creating it on first use.
func (s *Server) loopOf(el gnet.EventLoop) *loop {
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	l := s.loops[el]
	if l == nil {
		l = newLoop(s, el)
		s.loops[el] = l
	}
	return l
}

func (s *Server) loopList() []*loop {
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	out := make([]*loop, 0, len(s.loops))
	for _, l := range s.loops {
		out = append(out, l)
	}
	return out
}

// tick runs on gnet's ticker goroutine: it asks every loop to sweep its timers.
func (s *Server) tick() {
	for _, l := range s.loopList() {
		_ = l.el.Execute(context.Background(), l.sweepFn)
	}
}

// bind registers c (bound to c.user) for delivery. It runs on c's loop.
func (s *Server) bind(c *conn) {
	s.sessions.add(c)
	s.online.Add(1)
	s.stats.binds.Add(1)
	if s.presence != nil {
		s.presence.Connected(c.user)
	}
}

// unbind removes c from delivery. It runs on c's loop.
func (s *Server) unbind(c *conn) {
	if s.sessions.remove(c) == 0 && s.gaps != nil {
		s.gaps.drop(c.user)
	}
	s.online.Add(-1)
	if s.presence != nil {
		s.presence.Disconnected(c.user)
	}
}

func (s *Server) nodeInfo() *codec.NodeInfo {
	return &codec.NodeInfo{IP: s.cfg.AdvertiseIP, Port: int(s.advertisePort.Load()), OnlineCounts: s.online.Load()}
}

// WSURL is the URL clients dial for this node.
func (s *Server) WSURL() string {
	return "ws://" + net.JoinHostPort(s.cfg.AdvertiseIP, strconv.Itoa(int(s.advertisePort.Load()))) + s.cfg.Path
}

// AdvertiseAddr is the IP and port clients are told to use.
func (s *Server) AdvertiseAddr() (string, int) { return s.cfg.AdvertiseIP, int(s.advertisePort.Load()) }

// CatchUp replays to every device bound here what the store holds beyond what this
// node delivered to it, in order, holding live frames meanwhile. A cluster node calls it
// when its presence was missing from Redis for a while (Redis restarted, or the node
// registered again after a ZooKeeper expiry): routed delivery did not send it its users'
// messages in that time. Without gap repair (standalone) it does nothing. Any goroutine
// may call it.
func (s *Server) CatchUp() {
	if s.gaps != nil {
		s.gaps.catchUp()
	}
}

// NewMsgID returns a fresh msgId from the node's snowflake: the standalone server API
// sends with it, so its ids never collide with the node's. Any goroutine may call it.
func (s *Server) NewMsgID() int64 { return s.ids.Next() }

// Devices returns how many connections userID has on this node.
func (s *Server) Devices(userID string) int { return len(s.sessions.devices(userID)) }
