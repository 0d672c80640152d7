package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Defaults of ProbeConfig.
const (
	DefaultProbeInterval = 250 * time.Millisecond
	DefaultProbeTimeout  = 1500 * time.Millisecond
	DefaultProbeFailures = 2
)

// ProbeConfig configures a ProbedView. The zero value is usable.
type ProbeConfig struct {
	// Interval is the pause between the end of one probe of a node and the start of
	// the next. Default DefaultProbeInterval (250 ms).
	Interval time.Duration
	// Timeout bounds one probe (a TCP connect). Default DefaultProbeTimeout (1.5 s:
	// long enough for one SYN retransmission, so a node whose accept queue overflowed
	// once is not taken for dead).
	Timeout time.Duration
	// Failures is the number of consecutive failed probes after which a node is hidden;
	// one successful probe shows it again. Default DefaultProbeFailures (2).
	Failures int
	// Dial opens the probe connection; default a net.Dialer. Tests replace it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives a line when a node is hidden or shown again, and local dial
	// errors (at most one every 10 s). Default: discard.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default.
func (c ProbeConfig) withDefaults() ProbeConfig {
	if c.Interval <= 0 {
		c.Interval = DefaultProbeInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultProbeTimeout
	}
	if c.Failures <= 0 {
		c.Failures = DefaultProbeFailures
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// ProbedView is the dispatcher's own liveness signal: it wraps a NodeView (the
// registry's, current within a ZooKeeper session timeout) and hides every node whose
// WebSocket port refused or timed out Failures probes in a row. A node killed with
// SIGKILL leaves the picks within about Failures × Interval (its kernel refuses the
// connect at once), long before its ZooKeeper session expires; a node that never
// answered a probe yet is shown (it registered after it started listening).
//
// A probe is a TCP connect to the node's IP:Port, closed at once: it proves that the
// node's process is alive and its listener accepts, not that its event loops serve
// (a stopped process still completes handshakes from its kernel's backlog); that case
// is left to the ZooKeeper session. Dial errors that are the dispatcher's own
// (EMFILE, EADDRNOTAVAIL, …) neither hide nor show a node.
//
// Nodes answers from memory and returns the same slice until the inner view or the
// set of hidden nodes changes, as Picker expects.
type ProbedView struct {
	inner NodeView
	cfg   ProbeConfig
	log   *slog.Logger

	mu sync.Mutex
	// state per probed node, keyed by ID. Guarded by mu.
	state map[string]*probeState
	// version counts the changes of any state's down. Guarded by mu.
	version uint64
	// The last answer of Nodes and what it was built from. Guarded by mu.
	src     []Node
	srcVer  uint64
	out     []Node
	lastLog time.Time // last local-error log line. Guarded by mu.

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// probeState is what the prober knows of one node. Guarded by ProbedView.mu.
type probeState struct {
	addr     string
	fails    int
	down     bool
	inFlight bool
	seen     bool // still in the inner view at the last round
}

// NewProbedView returns a view of inner without the nodes that fail their probes.
// It probes nothing until Start.
func NewProbedView(inner NodeView, cfg ProbeConfig) *ProbedView {
	cfg = cfg.withDefaults()
	return &ProbedView{
		inner: inner,
		cfg:   cfg,
		log:   cfg.Logger,
		state: map[string]*probeState{},
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

// Start starts probing every node of the inner view, each every Interval, on its own
// goroutines, until Close.
func (v *ProbedView) Start() {
	go v.run()
}

// Close stops probing and waits for the probes in flight (at most Timeout).
func (v *ProbedView) Close() {
	v.once.Do(func() {
		close(v.stop)
	})
	<-v.done
}

// Nodes returns the inner view's nodes without the hidden ones. Safe for concurrent
// use; no I/O.
func (v *ProbedView) Nodes() []Node {
	src := v.inner.Nodes()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.out != nil && v.srcVer == v.version && sameSlice(src, v.src) {
		return v.out
	}
	out := make([]Node, 0, len(src))
	for i := range src {
		if st, ok := v.state[src[i].ID]; ok && st.down {
			continue
		}
		out = append(out, src[i])
	}
	v.src, v.srcVer, v.out = src, v.version, out
	return out
}

// hidden reports whether the node id is hidden by its probes.
func (v *ProbedView) hidden(id string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	st, ok := v.state[id]
	return ok && st.down
}

// sameSlice reports whether a and b are the same slice (views replace, never modify).
func sameSlice(a, b []Node) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// run starts a probe of every node not being probed, every Interval, until Close.
func (v *ProbedView) run() {
	var wg sync.WaitGroup
	defer close(v.done)
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tick := time.NewTicker(v.cfg.Interval)
	defer tick.Stop()
	for {
		for _, p := range v.due() {
			wg.Go(func() { v.probe(ctx, p.id, p.addr) })
		}
		select {
		case <-v.stop:
			return
		case <-tick.C:
		}
	}
}

type probeTarget struct{ id, addr string }

// due returns the nodes of the inner view that have no probe in flight, marks them in
// flight, and forgets the nodes that left the view.
func (v *ProbedView) due() []probeTarget {
	src := v.inner.Nodes()
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, st := range v.state {
		st.seen = false
	}
	var out []probeTarget
	for i := range src {
		n := &src[i]
		addr := net.JoinHostPort(n.IP, strconv.Itoa(n.Port))
		st, ok := v.state[n.ID]
		if !ok || st.addr != addr {
			if ok && st.down {
				v.version++
			}
			st = &probeState{addr: addr}
			v.state[n.ID] = st
		}
		st.seen = true
		if !st.inFlight {
			st.inFlight = true
			out = append(out, probeTarget{n.ID, addr})
		}
	}
	for id, st := range v.state {
		if !st.seen && !st.inFlight {
			if st.down {
				v.version++
			}
			delete(v.state, id)
		}
	}
	return out
}

// probe connects to addr once and records the outcome for id.
func (v *ProbedView) probe(ctx context.Context, id, addr string) {
	pctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	conn, err := v.cfg.Dial(pctx, "tcp", addr)
	cancel()
	if err == nil {
		_ = conn.Close()
	}
	if ctx.Err() != nil {
		return // closing
	}
	v.record(id, addr, err)
}

// record applies one probe outcome to the node's state.
func (v *ProbedView) record(id, addr string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	st, ok := v.state[id]
	if !ok || st.addr != addr {
		return // the node left the view, or came back under another address
	}
	st.inFlight = false
	switch {
	case err == nil:
		st.fails = 0
		if st.down {
			st.down = false
			v.version++
			v.log.Info("dispatch: node answers its probes again; picking it", "node", id, "addr", addr)
		}
	case nodeFault(err):
		st.fails++
		if !st.down && st.fails >= v.cfg.Failures {
			st.down = true
			v.version++
			v.log.Warn("dispatch: node fails its probes; not picking it until it answers",
				"node", id, "addr", addr, "failures", st.fails, "err", err)
		}
	default:
		if now := time.Now(); now.Sub(v.lastLog) >= 10*time.Second {
			v.lastLog = now
			v.log.Warn("dispatch: cannot probe nodes (a local error: nodes keep their state; logged at most every 10s)",
				"node", id, "addr", addr, "err", err)
		}
	}
}

// nodeFault reports whether a dial error says the node (or the path to it) is down,
// rather than that the dispatcher itself cannot open a socket.
func nodeFault(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EHOSTUNREACH,
		syscall.ENETUNREACH, syscall.EHOSTDOWN, syscall.ECONNABORTED, syscall.ETIMEDOUT} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
