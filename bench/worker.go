package bench

import (
	"bytes"
	"context"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"imgate/client"
)

// worker runs one process's share of a run: its users, their connections, their messages.
type worker struct {
	cfg      Config
	tag      string   // clientMsgId prefix, unique per run and worker
	users    []string // user ids by local user index
	conns    []*conn  // user-major: conns[u*Devices+d]
	body     []byte
	srcAddrs []net.Addr
	srcNext  atomic.Uint64
	httpc    *http.Client
	emit     func(Event)

	msgs                        msgTable
	ackH, dlvH, connectH, initH Histogram
	pickH                       Histogram // the dispatcher's answer, queueing for a connection included

	attempted, bound, dialFailed, initFailed, droppedN, closedClean atomic.Int64
	sent, acked, refused, delivered, dupAcks, dupDeliveries         atomic.Uint64
	foreign, misrouted, keepalives, sendFailed, cycles, missed      atomic.Uint64
	expPairs, dlvPairs                                              atomic.Int64

	sending     atomic.Bool
	setupFailed bool         // the groups could not be created: nothing was sent
	budget      atomic.Int64 // messages left when cfg.Messages > 0
	phase       atomic.Value // string
	ps          progressState

	mu         sync.Mutex // guards the maps
	closeCodes map[int]uint64
	errs       map[string]uint64

	sendStart, sendEnd time.Time

	storm *stormState // storm scenario only
}

// dispatchConns bounds a worker's keep-alive connections to the dispatcher.
const dispatchConns = 512

func newWorker(cfg Config, emit func(Event)) *worker {
	w := &worker{cfg: cfg, emit: emit, closeCodes: map[int]uint64{}, errs: map[string]uint64{}}
	w.tag = fmt.Sprintf("%s%sw%d", cfg.UserPrefix, cfg.RunID, cfg.Worker)
	w.users = make([]string, cfg.Users)
	for u := range w.users {
		w.users[u] = cfg.UserPrefix + "-" + strconv.Itoa(cfg.FirstIdx+u)
	}
	w.body = bytes.Repeat([]byte{'x'}, cfg.MsgSize)
	for _, ip := range cfg.SrcIPs {
		w.srcAddrs = append(w.srcAddrs, &net.TCPAddr{IP: net.ParseIP(ip)})
	}
	if cfg.Dispatcher != "" {
		w.httpc = &http.Client{
			Timeout: cfg.InitTimeout,
			// As many idle connections as open ones: a connection over the idle bound is
			// closed after its request and a new one opened for the next, each leaving a
			// TIME_WAIT port behind. 512 per worker lets a loaded dispatcher answer
			// --rate-connect (throughput = connections / answer time): with 64, picks
			// queued for 9 s at 2,000/s on a loaded machine (docs/performance.md).
			Transport: &http.Transport{MaxIdleConnsPerHost: dispatchConns, MaxConnsPerHost: dispatchConns, IdleConnTimeout: 10 * time.Second},
		}
	}
	// Made here, before the progress goroutine reads them (it once saw nil entries
	// while ramp was still filling the slice). Churn makes its own per cycle.
	k := cfg.Devices
	if cfg.Scenario != ScenarioChurn {
		w.conns = make([]*conn, cfg.Conns())
	}
	for i := range w.conns {
		w.conns[i] = &conn{w: w, idx: int32(i), user: int32(i / k), dev: int32(i % k), rnd: cfg.Seed ^ uint64(i+1)*0x9E3779B97F4A7C15 | 1}
	}
	if cfg.Scenario == ScenarioStorm {
		w.storm = newStormState()
	}
	w.phase.Store("start")
	return w
}

func (w *worker) errorKind(kind string) {
	w.mu.Lock()
	w.errs[kind]++
	w.mu.Unlock()
}

func (w *worker) closeCode(code int) {
	w.mu.Lock()
	w.closeCodes[code]++
	w.mu.Unlock()
}

// target returns the WebSocket URL for c: from the dispatcher (GET /api/v1/nodes/pick) or the
// configured URLs round-robin.
func (w *worker) target(ctx context.Context, c *conn) (string, error) {
	if !w.usesDispatcher(c) {
		i := int(c.user)*w.cfg.Devices + int(c.dev)
		return w.cfg.URLs[i%len(w.cfg.URLs)], nil
	}
	return client.Pick(ctx, w.httpc, w.cfg.Dispatcher, c.userID())
}

// lookup maps a clientMsgId of this worker ("<tag>-<index>") to its record.
func (w *worker) lookup(id []byte) *msgRec {
	i := bytes.LastIndexByte(id, '-')
	if i < 0 || string(id[:i]) != w.tag {
		return nil
	}
	n, ok := atoi(id[i+1:])
	if !ok || n < 0 {
		return nil
	}
	r := w.msgs.at(uint64(n))
	if r == nil || r.state.Load() == msgReserved {
		return nil
	}
	return r
}

// onlineMask returns the device bits of user u that are bound, skipping connection skip.
func (w *worker) onlineMask(u int32, shift uint, skip int32) uint64 {
	var m uint64
	k := int32(w.cfg.Devices)
	for d := int32(0); d < k; d++ {
		i := u*k + d
		if i != skip && w.conns[i].state.Load() == stBound {
			m |= 1 << (shift + uint(d))
		}
	}
	return m
}

// droppedMask returns the device bits of r's receiver and sender whose connection dropped.
func (w *worker) droppedMask(r *msgRec) uint64 {
	var m uint64
	k := int32(w.cfg.Devices)
	s := w.conns[r.sender].user
	for d := int32(0); d < k; d++ {
		if w.conns[r.receiver*k+d].state.Load() == stDropped {
			m |= 1 << uint(d)
		}
		if w.conns[s*k+d].state.Load() == stDropped {
			m |= 1 << uint(32+d)
		}
	}
	return m
}

// unexpect removes a refused message's undelivered pairs from the pending count.
func (w *worker) unexpect(r *msgRec) {
	if r.grp != nil {
		w.expPairs.Add(-r.grp.pending())
		return
	}
	w.expPairs.Add(-int64(bits.OnesCount64(r.expected &^ r.delivered.Load())))
}

// connDropped reports whether connection i dropped during the run.
func (w *worker) connDropped(i int32) bool { return w.conns[i].state.Load() == stDropped }

// sendNext sends the scenario's next message from c: to its group, or to a random other user.
func (w *worker) sendNext(c *conn, rnd uint64) bool {
	if w.cfg.Scenario == ScenarioGroups {
		return w.sendGroup(c)
	}
	return w.send(c, w.pickReceiver(c.user, rnd))
}

// reserve takes one message of the --messages budget and a record in the message table
// for it; false (and sending stops) when sending is over or either is used up.
func (w *worker) reserve() (uint64, *msgRec, bool) {
	if !w.sending.Load() {
		return 0, nil, false
	}
	if w.cfg.Messages > 0 && w.budget.Add(-1) < 0 {
		w.sending.Store(false)
		return 0, nil, false
	}
	idx, r, ok := w.msgs.add()
	if !ok {
		w.sending.Store(false)
	}
	return idx, r, ok
}

// send sends one WORDS message from c to user recv. It returns false when sending is over.
func (w *worker) send(c *conn, recv int32) bool {
	idx, r, ok := w.reserve()
	if !ok {
		return false
	}
	r.sender = c.idx
	r.receiver = recv
	r.expected = w.onlineMask(recv, 0, -1) | w.onlineMask(c.user, 32, c.idx)
	w.expPairs.Add(int64(bits.OnesCount64(r.expected)))
	now := time.Now().UnixNano()
	r.sendNanos = now
	r.state.Store(msgSent) // publishes the fields above
	err := c.writeText(func(b []byte) []byte {
		if w.cfg.Protocol == ProtocolCentrifugo {
			b = appendCentPublish(b, centChannel(w.users[recv]), c.userID(), w.tag, idx, now, w.body, false)
			if w.cfg.Devices > 1 {
				b = append(b, '\n')
				b = appendCentPublish(b, centChannel(c.userID()), c.userID(), w.tag, idx, now, w.body, true)
			}
			return b
		}
		return appendWords(b, c.userID(), w.users[recv], w.tag, idx, now, w.body)
	})
	w.wrote(r, err)
	return true
}

// wrote counts message r as sent; when its write failed (err), r is refused (it will
// neither be ACKed nor delivered) and the failure counted.
func (w *worker) wrote(r *msgRec, err error) {
	w.sent.Add(1)
	if err != nil {
		if r.state.CompareAndSwap(msgSent, msgRefused) {
			w.unexpect(r)
		}
		w.sendFailed.Add(1)
		w.errorKind("write: message")
	}
}

// pickReceiver returns a random user other than from.
func (w *worker) pickReceiver(from int32, rnd uint64) int32 {
	n := uint64(len(w.users))
	r := int32(rnd % (n - 1))
	if r >= from {
		r++
	}
	return r
}

// windowNext keeps the window of c full in windowed mode (Rate 0): one new message per
// ACK or ERROR. Called by c's reader.
func (w *worker) windowNext(c *conn) {
	if w.cfg.Rate != 0 || !w.sending.Load() || c.state.Load() != stBound {
		return
	}
	c.wmu.Lock()
	rnd := c.next64()
	c.wmu.Unlock()
	w.sendNext(c, rnd)
}

// pace calls fn(i) for i = 0, 1, ... at rate calls per second (0: as fast as fn returns) until
// fn returns false, n calls were made (n < 0: no bound) or ctx ends. Calls are issued in batches
// every few milliseconds, not one timer per call. When the caller falls more than a second
// behind schedule: with skip nil, it catches up (every i is called); otherwise the calls more
// than a second late are not made and skip is told how many.
func pace(ctx context.Context, rate float64, n int64, skip func(missed int64), fn func(i int64) bool) {
	start := time.Now()
	var missed int64
	for i := int64(0); n < 0 || i < n; {
		if ctx.Err() != nil {
			return
		}
		if rate <= 0 {
			if !fn(i) {
				return
			}
			i++
			continue
		}
		due := int64(time.Since(start).Seconds()*rate) - missed
		if lag := due - i; skip != nil && lag > int64(rate)+1 {
			missed += lag - int64(rate)
			skip(lag - int64(rate))
			due = i + int64(rate)
		}
		if i >= due {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		for ; i < due && (n < 0 || i < n); i++ {
			if !fn(i) {
				return
			}
		}
	}
}

func (w *worker) setPhase(p string) {
	w.phase.Store(p)
	w.progress(true)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// waitFor polls cond every 20 ms until it holds, d passes or ctx ends.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
	return true
}

// run executes the worker's share of the scenario and returns its result.
func (w *worker) run(ctx context.Context) *Result {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	stopProgress := w.startProgress()
	var readers sync.WaitGroup
	if w.cfg.Scenario == ScenarioChurn {
		w.runChurn(ctx, &readers)
	} else {
		// Keepalives start with the ramp: a ramp longer than the server's idle timeout
		// (55,000 at 1,000/s) lost its first connections with 4408 when they started after.
		stopKA := w.startKeepalive(ctx)
		if err := w.setup(ctx); err != nil {
			w.errorKind("setup: " + err.Error())
			w.setupFailed = true
		} else {
			w.ramp(ctx, &readers)
		}
		switch {
		case w.setupFailed:
		case w.cfg.Scenario == ScenarioIdle:
			w.setPhase("hold")
			sleepCtx(ctx, w.cfg.Duration)
		case w.cfg.Scenario == ScenarioStorm:
			w.runStorm(ctx)
		default: // p2p, devices, groups
			w.setPhase("send")
			w.runSend(ctx)
			w.setPhase("grace")
			waitFor(ctx, w.cfg.Grace, func() bool {
				return w.sent.Load() == w.acked.Load()+w.refused.Load() && w.expPairs.Load() <= w.dlvPairs.Load()
			})
		}
		stopKA()
	}
	res := w.result(ctx)
	w.setPhase("close")
	for _, c := range w.conns {
		c.startClose(1000)
	}
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		for _, c := range w.conns {
			c.closeSocket()
		}
		<-done
	}
	stopProgress()
	if w.httpc != nil {
		w.httpc.CloseIdleConnections()
	}
	res.ClosedClean = w.closedClean.Load()
	return res
}

// setup prepares the server before the ramp: the groups scenario creates its groups.
func (w *worker) setup(ctx context.Context) error {
	if w.cfg.Scenario != ScenarioGroups || w.cfg.Protocol == ProtocolCentrifugo {
		return nil
	}
	w.setPhase("groups")
	return w.createGroups(ctx)
}

// ramp opens all connections at the connect rate and waits until each is bound or failed.
func (w *worker) ramp(ctx context.Context, readers *sync.WaitGroup) {
	w.setPhase("ramp")
	var settled atomic.Int64
	pace(ctx, w.cfg.RateConnect, int64(len(w.conns)), nil, func(i int64) bool {
		readers.Add(1)
		go func() {
			defer readers.Done()
			settle := func(bool) { settled.Add(1) }
			if w.storm != nil {
				w.stormConn(ctx, w.conns[i], settle)
				return
			}
			w.conns[i].run(ctx, false, settle)
		}()
		return true
	})
	waitFor(ctx, w.cfg.InitTimeout+5*time.Second, func() bool { return settled.Load() >= int64(len(w.conns)) })
}

// runSend sends messages for the duration: paced (Rate > 0) or windowed.
func (w *worker) runSend(ctx context.Context) {
	if w.cfg.Messages > 0 {
		w.budget.Store(w.cfg.Messages)
	}
	sctx, cancel := context.WithTimeout(ctx, w.cfg.Duration)
	defer cancel()
	w.sendStart = time.Now()
	w.sending.Store(true)
	if w.cfg.Rate == 0 {
		for _, c := range w.conns {
			if c.state.Load() != stBound {
				continue
			}
			for j := 0; j < w.cfg.Inflight; j++ {
				c.wmu.Lock()
				rnd := c.next64()
				c.wmu.Unlock()
				if !w.sendNext(c, rnd) {
					break
				}
			}
		}
		for sctx.Err() == nil && w.sending.Load() {
			sleepCtx(sctx, 20*time.Millisecond)
		}
	} else {
		senders := min(runtime.GOMAXPROCS(0), 4)
		var wg sync.WaitGroup
		for s := 0; s < senders; s++ {
			wg.Add(1)
			go func(seed uint64) {
				defer wg.Done()
				rnd := rand.New(rand.NewPCG(w.cfg.Seed, seed))
				pace(sctx, w.cfg.Rate/float64(senders), -1, func(n int64) { w.missed.Add(uint64(n)) }, func(int64) bool {
					for try := 0; try < 8; try++ {
						c := w.conns[rnd.IntN(len(w.conns))]
						if c.state.Load() == stBound {
							return w.sendNext(c, rnd.Uint64())
						}
					}
					return w.sending.Load()
				})
			}(uint64(s + 1))
		}
		wg.Wait()
	}
	w.sending.Store(false)
	w.sendEnd = time.Now()
}

// startKeepalive sends KEEPALIVE (or a ping) to every bound connection once per Keepalive
// interval, spread over the interval in one-second slices.
func (w *worker) startKeepalive(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		slots := max(int64(w.cfg.Keepalive/time.Second), 1)
		tick := time.NewTicker(min(w.cfg.Keepalive, time.Second))
		defer tick.Stop()
		for n := int64(0); ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for i := n % slots; i < int64(len(w.conns)); i += slots {
				c := w.conns[i]
				if c.state.Load() != stBound {
					continue
				}
				var err error
				if w.cfg.KeepaliveKind == "ping" || w.cfg.Protocol == ProtocolCentrifugo {
					err = c.writeControl(opPing, nil)
				} else {
					err = c.writeText(func(b []byte) []byte { return appendKeepalive(b, c.userID()) })
				}
				if err != nil {
					w.errorKind("write: keepalive")
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// runChurn runs connect → CONNECT_INIT → ACK → close cycles at cfg.Rate cycles/s (0: as fast as
// possible) for the duration, at most Users cycles at once, user ids taken in turn.
func (w *worker) runChurn(ctx context.Context, readers *sync.WaitGroup) {
	w.setPhase("churn")
	sctx, cancel := context.WithTimeout(ctx, w.cfg.Duration)
	defer cancel()
	sem := make(chan struct{}, w.cfg.Users)
	w.sendStart = time.Now()
	var n int64 = -1
	if w.cfg.Messages > 0 {
		n = w.cfg.Messages
	}
	pace(sctx, w.cfg.Rate, n, func(k int64) { w.missed.Add(uint64(k)) }, func(i int64) bool {
		select {
		case sem <- struct{}{}:
		case <-sctx.Done():
			return false
		}
		c := &conn{w: w, idx: -1, user: int32(i % int64(w.cfg.Users)), rnd: uint64(i)*0x9E3779B97F4A7C15 | 1}
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer func() { <-sem }()
			c.run(ctx, true, func(ok bool) {
				if ok {
					w.cycles.Add(1)
				}
			})
		}()
		return true
	})
	w.sendEnd = time.Now()
	readers.Wait()
}
