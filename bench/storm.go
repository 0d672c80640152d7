package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"imgate/backoff"
	"imgate/client"
)

// Reconnect backoff of the storm scenario after a failed attempt: capped exponential with
// jitter (backoff.Delay), at least the dispatcher's Retry-After advice.
const (
	stormBackoffLo = 250 * time.Millisecond
	stormBackoffHi = 5 * time.Second
	// stormQuiet: the storm is over when every dropped connection is bound again and no
	// connection dropped for this long.
	stormQuiet = 500 * time.Millisecond
)

// stormState is the storm scenario's bookkeeping, shared by the worker's connections.
type stormState struct {
	firstDrop, lastDrop, lastRebind atomic.Int64 // unix nanos, 0 = none
	drops, rebinds, attempts        atomic.Int64
	replayed                        atomic.Int64 // messages received before the init ACK of a reconnect
	rebindH                         Histogram    // drop → init ACK of the new connection, per drop
	pickH, connectH, initH          Histogram    // the reconnect attempts' own figures

	stopOnce sync.Once
	stopped  chan struct{} // closed when reconnecting ends
}

func newStormState() *stormState { return &stormState{stopped: make(chan struct{})} }

func (s *stormState) stop() { s.stopOnce.Do(func() { close(s.stopped) }) }

func (s *stormState) over() bool {
	select {
	case <-s.stopped:
		return true
	default:
		return false
	}
}

// storeMax raises a to v when v is larger.
func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// dropped notes that c, bound, dropped now. Called by c's reader.
func (s *stormState) dropped(c *conn) {
	now := time.Now()
	c.dropAt = now
	s.drops.Add(1)
	s.firstDrop.CompareAndSwap(0, now.UnixNano())
	storeMax(&s.lastDrop, now.UnixNano())
}

// rebound notes that c, dropped, is bound again (its replay done: the init ACK follows it).
func (s *stormState) rebound(c *conn, now time.Time) {
	s.rebindH.Record(now.Sub(c.dropAt))
	s.rebinds.Add(1)
	storeMax(&s.lastRebind, now.UnixNano())
	c.rebinding = false
}

// usesDispatcher reports whether c's next dial asks the dispatcher: always when no --url
// is given; in the storm scenario with both, the first connection dials --url (so one node
// holds the users) and every reconnect asks the dispatcher, as a real client does.
func (w *worker) usesDispatcher(c *conn) bool {
	if w.cfg.Dispatcher == "" {
		return false
	}
	return len(w.cfg.URLs) == 0 || c.rebinding
}

func (w *worker) pickHist(c *conn) *Histogram {
	if c.rebinding {
		return &w.storm.pickH
	}
	return &w.pickH
}

func (w *worker) connectHist(c *conn) *Histogram {
	if c.rebinding {
		return &w.storm.connectH
	}
	return &w.connectH
}

func (w *worker) initHist(c *conn) *Histogram {
	if c.rebinding {
		return &w.storm.initH
	}
	return &w.initH
}

// stormConn runs c: the first connection, then, each time it drops while the storm is on,
// reconnects through the dispatcher with the cursor of the last seq it saw: first after a
// random delay in [0, StormJitter), after a failed attempt after backoff.Delay (at least the
// dispatcher's Retry-After). It returns when c ends without dropping or the storm is over.
func (w *worker) stormConn(ctx context.Context, c *conn, settle func(bool)) {
	s := w.storm
	var advice time.Duration
	c.run(ctx, false, settle)
	for attempt := 0; ; {
		st := c.state.Load()
		switch {
		case ctx.Err() != nil || s.over():
			return
		case st == stDropped:
			c.rebinding, attempt = true, 0
		case st == stNew && c.rebinding: // a reconnect failed
		default: // closing, or the first connection failed
			return
		}
		attempt++
		var d time.Duration
		if attempt == 1 {
			if w.cfg.StormJitter > 0 {
				d = rand.N(w.cfg.StormJitter)
			}
		} else {
			d = max(backoff.Delay(attempt-1, stormBackoffLo, stormBackoffHi), advice)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
		case <-s.stopped:
		case <-t.C:
		}
		t.Stop()
		if ctx.Err() != nil || s.over() || !c.state.CompareAndSwap(st, stNew) {
			return
		}
		s.attempts.Add(1)
		advice = 0
		c.lastErr = nil
		c.run(ctx, false, nil)
		var he *client.HTTPError
		if errors.As(c.lastErr, &he) {
			advice = he.RetryAfter
		}
	}
}

// runStorm waits up to Duration for the first drop, then until every dropped connection
// is bound again and none dropped for stormQuiet, at most StormMax after the first drop.
func (w *worker) runStorm(ctx context.Context) {
	s := w.storm
	defer s.stop()
	w.setPhase("wait")
	if !waitFor(ctx, w.cfg.Duration, func() bool { return s.firstDrop.Load() != 0 }) {
		return
	}
	w.setPhase("storm")
	deadline := time.Unix(0, s.firstDrop.Load()).Add(w.cfg.StormMax)
	waitFor(ctx, time.Until(deadline), func() bool {
		return s.rebinds.Load() >= s.drops.Load() && time.Since(time.Unix(0, s.lastDrop.Load())) >= stormQuiet
	})
}

// StormResult is the storm scenario's part of a Result.
type StormResult struct {
	Dropped     int64  `json:"dropped"`  // drops of bound connections while reconnecting was on
	Rebound     int64  `json:"rebound"`  // drops followed by a new bound connection (replay done)
	Attempts    int64  `json:"attempts"` // reconnect attempts (pick + dial + CONNECT_INIT)
	Replayed    int64  `json:"replayed"` // messages replayed to reconnecting connections
	FirstDrop   int64  `json:"firstDrop"`
	LastDrop    int64  `json:"lastDrop"`
	LastRebind  int64  `json:"lastRebind"`
	RebindHist  Sparse `json:"rebindHist"`
	PickHist    Sparse `json:"pickHist"`
	ConnectHist Sparse `json:"connectHist"`
	InitHist    Sparse `json:"initHist"`
}

func (s *stormState) result() *StormResult {
	return &StormResult{
		Dropped: s.drops.Load(), Rebound: s.rebinds.Load(), Attempts: s.attempts.Load(), Replayed: s.replayed.Load(),
		FirstDrop: s.firstDrop.Load(), LastDrop: s.lastDrop.Load(), LastRebind: s.lastRebind.Load(),
		RebindHist: s.rebindH.Snapshot(), PickHist: s.pickH.Snapshot(), ConnectHist: s.connectH.Snapshot(), InitHist: s.initH.Snapshot(),
	}
}

// merge adds o into r.
func (r *StormResult) merge(o *StormResult) {
	r.Dropped += o.Dropped
	r.Rebound += o.Rebound
	r.Attempts += o.Attempts
	r.Replayed += o.Replayed
	if o.FirstDrop != 0 && (r.FirstDrop == 0 || o.FirstDrop < r.FirstDrop) {
		r.FirstDrop = o.FirstDrop
	}
	r.LastDrop = max(r.LastDrop, o.LastDrop)
	r.LastRebind = max(r.LastRebind, o.LastRebind)
	for _, p := range []struct {
		dst *Sparse
		src Sparse
	}{{&r.RebindHist, o.RebindHist}, {&r.PickHist, o.PickHist}, {&r.ConnectHist, o.ConnectHist}, {&r.InitHist, o.InitHist}} {
		h := FromSparse(*p.dst)
		h.mergeSparse(p.src)
		*p.dst = h.Snapshot()
	}
}

// StormReport is the storm scenario's part of the Report.
type StormReport struct {
	Dropped  int64 `json:"dropped"`
	Rebound  int64 `json:"rebound"`
	Failed   int64 `json:"failed"` // dropped and not bound again when the storm ended
	Attempts int64 `json:"attempts"`
	Replayed int64 `json:"replayed"`
	// Seconds: first drop → last rebind (the whole storm); DropSpread: first → last drop.
	Seconds    float64 `json:"seconds"`
	DropSpread float64 `json:"dropSpreadSeconds"`
	Rebind     Summary `json:"rebind"` // per drop: drop → init ACK of the new connection
	Pick       Summary `json:"pick"`
	Connect    Summary `json:"connect"`
	Init       Summary `json:"init"`
}

func buildStormReport(r *StormResult) *StormReport {
	rep := &StormReport{Dropped: r.Dropped, Rebound: r.Rebound, Failed: r.Dropped - r.Rebound, Attempts: r.Attempts, Replayed: r.Replayed,
		Rebind: FromSparse(r.RebindHist).Summarize(), Pick: FromSparse(r.PickHist).Summarize(),
		Connect: FromSparse(r.ConnectHist).Summarize(), Init: FromSparse(r.InitHist).Summarize()}
	if r.FirstDrop != 0 && r.LastRebind > r.FirstDrop {
		rep.Seconds = float64(r.LastRebind-r.FirstDrop) / 1e9
	}
	if r.FirstDrop != 0 {
		rep.DropSpread = float64(r.LastDrop-r.FirstDrop) / 1e9
	}
	return rep
}

// validateStorm checks the storm flags: reconnects need a dispatcher.
func (c *Config) validateStorm() error {
	if c.Dispatcher == "" {
		return errors.New("bench: the storm scenario reconnects through --dispatcher (--url, when given, is for the first connections)")
	}
	if c.Devices != 1 {
		return errors.New("bench: the storm scenario has one connection per user")
	}
	if c.Protocol != ProtocolImgate {
		return fmt.Errorf("bench: the storm scenario speaks --protocol %s only", ProtocolImgate)
	}
	if c.StormJitter < 0 || c.StormMax <= 0 {
		return errors.New("bench: --storm-jitter must be >= 0 and --storm-max > 0")
	}
	return nil
}

// writeTable prints the storm rows of the report.
func (s *StormReport) writeTable(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "storm\tdropped %d, rebound %d, FAILED %d\t%d reconnect attempts, %d messages replayed\n", s.Dropped, s.Rebound, s.Failed, s.Attempts, s.Replayed)
	fmt.Fprintf(tw, "storm time\t%.2fs first drop → last rebind\tdrops spread over %.2fs\n", s.Seconds, s.DropSpread)
	_ = tw.Flush()
	writeLatencies(out, "storm latency", []namedSummary{{"rebind", s.Rebind}, {"re-pick", s.Pick}, {"re-connect", s.Connect}, {"re-init", s.Init}})
}
