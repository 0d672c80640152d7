package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"imgate/message"
)

// replayJob is the store work of one CONNECT_INIT: replay after cursor (when asked) and
// the newest seq for the ACK.
type replayJob struct {
	c      *conn
	user   string
	cursor int64
	replay bool
	// repair: a gap repair (see gaps.go): replay after cursor up to upTo (toNewest: the
	// store's newest seq), no ACK.
	repair bool
	upTo   int64
	// catchUps is the gap tracker's catch-up count before the job's newest seq was read
	// (set by runBatch): a catch-up that started since did not see this device's user.
	catchUps uint64
}

// toNewest as a repair's upTo means the store's newest seq, read when the job runs.
const toNewest = -1

// replayer runs replay jobs on a fixed set of goroutines with a bounded queue, so that
// event loops never wait for the store.
type replayer struct {
	srv  *Server
	jobs chan replayJob
	// slow holds one token per replay that waits for its connection's backlog (see
	// jobRun.yieldSlow), at most SlowReplays.
	slow chan struct{}
	// ctx bounds every job; close cancels it so that Shutdown never waits for a store.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newReplayer(srv *Server) *replayer {
	r := &replayer{srv: srv, jobs: make(chan replayJob, srv.cfg.ReplayQueue), slow: make(chan struct{}, srv.cfg.SlowReplays)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

func (r *replayer) start() {
	for range r.srv.cfg.ReplayWorkers {
		r.wg.Add(1)
		go r.work()
	}
}

// submit queues j; it reports false when the queue is full.
func (r *replayer) submit(j replayJob) bool {
	select {
	case r.jobs <- j:
		return true
	default:
		return false
	}
}

// close cancels the jobs in progress and stops the workers; queued jobs are dropped
// (their connections are closing).
func (r *replayer) close() {
	r.cancel()
	r.wg.Wait()
}

// maxBatch bounds the jobs one worker takes at once: one presence sync and one newest-seq
// read serve them all (a burst of binds, a reconnect storm), instead of one round trip to
// Redis and one to the store per CONNECT_INIT.
const maxBatch = 256

func (r *replayer) work() {
	defer r.wg.Done()
	batch := make([]replayJob, 0, maxBatch)
	for {
		select {
		case <-r.ctx.Done():
			return
		case j := <-r.jobs:
			batch = append(batch[:0], j)
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case j := <-r.jobs:
				batch = append(batch, j)
			default:
				break fill
			}
		}
		ok := r.runBatch(batch)
		clear(batch) // the jobs' connections are not kept alive by the worker
		if !ok {
			return
		}
	}
}

// runBatch reads what every job of batch needs first (presence visible, the newest seqs),
// then answers the jobs with nothing to replay at once and starts the others. It reports
// false when the replayer is closing.
func (r *replayer) runBatch(batch []replayJob) bool {
	if g := r.srv.gaps; g != nil {
		n := g.catchUps.Load()
		for i := range batch {
			batch[i].catchUps = n
		}
	}
	newest, err := r.prepare(batch)
	if err != nil && r.ctx.Err() != nil {
		return false // closing: the connections are being closed, nothing to answer or log
	}
	for i, j := range batch {
		switch {
		case err != nil && needsNewest(j):
			if j.repair && r.srv.gaps != nil {
				r.srv.gaps.repaired(j.user) // as run would have: the tracker counts its jobs
			}
			r.fail(j.c, err)
		case !mayReplay(j, newest[i]):
			// Nothing to read: the ACK (or the release of a repair) is pushed now,
			// without a goroutine of its own.
			r.run(nil, j, newest[i])
		default:
			if !r.spawn(j, newest[i]) {
				return false
			}
		}
	}
	return true
}

// spawn runs j on its own goroutine; the worker waits only until it ends or must wait for
// its connection's backlog (jobRun.yieldSlow), so a client that does not read never holds
// a worker, and other CONNECT_INITs go on. It reports false when the replayer is closing.
func (r *replayer) spawn(j replayJob, newest int64) bool {
	jr := &jobRun{r: r, freed: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer jr.done()
		r.run(jr, j, newest)
	}()
	select {
	case <-jr.freed:
		return true
	case <-r.ctx.Done():
		return false
	}
}

// needsNewest reports whether j reads the store's newest seq of its user: every
// CONNECT_INIT (for its ACK) and a repair up to the newest.
func needsNewest(j replayJob) bool { return !j.repair || j.upTo == toNewest }

// mayReplay reports whether j may have entries to read and push (newest: its user's newest
// seq, when needsNewest).
func mayReplay(j replayJob, newest int64) bool {
	switch {
	case j.repair && j.upTo == toNewest:
		return j.cursor < newest
	case j.repair:
		return j.cursor < j.upTo
	default:
		return j.replay && j.cursor < newest
	}
}

// prepare makes the presence of batch's binding users visible (one sync for all of them)
// and then reads the newest seq of every job that needs it, in one store call; newest is
// indexed like batch.
func (r *replayer) prepare(batch []replayJob) ([]int64, error) {
	s := r.srv
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	newest := make([]int64, len(batch))
	var users []string
	var at []int
	binding, first := 0, ""
	for i, j := range batch {
		if !j.repair {
			binding++
			if first == "" {
				first = j.user
			}
		}
		if needsNewest(j) {
			users = append(users, j.user)
			at = append(at, i)
		}
	}
	if binding > 0 && s.presence != nil {
		r.syncPresence(ctx, first, binding)
	}
	if len(users) == 0 {
		return newest, nil
	}
	last, err := s.readNewest(ctx, users)
	if err != nil {
		return newest, err
	}
	for k, i := range at {
		newest[i] = last[k]
	}
	return newest, nil
}

// readNewest reads the newest seq of each of users from the store in one call, the one
// reading of LastSeqs (binds, repairs and catch-ups), and counts it
// (imgate_newest_seq_reads_total).
func (s *Server) readNewest(ctx context.Context, users []string) ([]int64, error) {
	last, err := s.inbox.LastSeqs(ctx, users)
	if err == nil && len(last) != len(users) {
		err = fmt.Errorf("server: the store answered %d newest seqs for %d users", len(last), len(users))
	}
	if err != nil {
		return nil, err
	}
	s.stats.newestReads.Add(1)
	return last, nil
}

// jobRun is one running replay job: whether it still holds its worker.
type jobRun struct {
	r *replayer
	// freed is closed when the job gives its worker back; slow reports that it then
	// took a slot of the slow pool. Only the job's goroutine touches slow.
	freed chan struct{}
	slow  bool
}

// yieldSlow is called when the replay must wait for c's backlog: it moves the job to the
// slow pool and gives the worker back. It reports false when the slow pool is full (the
// caller closes the connection with 1013).
func (jr *jobRun) yieldSlow() bool {
	if jr == nil {
		// A job run on its worker (nothing to replay, mayReplay) never waits for a
		// backlog; were it ever to, it has no worker to give back: try again later.
		return false
	}
	if jr.slow {
		return true
	}
	select {
	case jr.r.slow <- struct{}{}:
		jr.slow = true
		close(jr.freed)
		return true
	default:
		return false
	}
}

// done frees the worker (when the job did not) and the slow slot (when it took one).
func (jr *jobRun) done() {
	if jr.slow {
		<-jr.r.slow
		return
	}
	close(jr.freed)
}

// run replays j.user's inbox after j.cursor to j.c, then (for a CONNECT_INIT) sends its
// ACK. newest is the user's newest seq, read by prepare after the user's presence became
// visible (when needsNewest): the replay goes up to it, and whatever is committed later
// reaches this node live and is held until the ACK (hold.go), so nothing falls between the
// two. It reads ReplayPage entries per store call and pushes their frames by bytes
// (pushSome): only what fits, with the connection's backlog (loop queue and gnet's
// outbound buffer), under half its bound, so a long inbox or large messages never trip
// the slow-consumer close; it stops as soon as the connection is gone. jr is nil when
// mayReplay is false (nothing is pushed through pushSome then).
func (r *replayer) run(jr *jobRun, j replayJob, newest int64) {
	s := r.srv
	ctx := r.ctx
	if jr != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(r.ctx, 30*time.Second)
		defer cancel()
	}
	c := j.c
	last := j.cursor
	if j.repair && s.gaps != nil {
		defer s.gaps.repaired(j.user)
	}
	if j.repair && j.upTo == toNewest {
		j.upTo = newest
		if s.gaps != nil {
			s.gaps.raise(j.user, newest)
		}
	}
	if j.replay || j.repair {
		limit := newest
		if j.repair {
			limit = j.upTo
		}
		order := orderReplay
		if j.repair {
			order = orderRepair
		}
		// pending: frames read and encoded, not yet pushed; read: the last seq read.
		var pending []task
		read := last
		for {
			if len(pending) == 0 {
				if read >= limit {
					break
				}
				entries, err := s.inbox.Replay(ctx, j.user, read, s.cfg.ReplayPage)
				if err != nil {
					r.fail(c, err)
					return
				}
				entries = upTo(entries, limit)
				if len(entries) == 0 {
					break
				}
				for i := range entries {
					e := &entries[i]
					pending = append(pending, task{c: c, frame: appendDelivery(nil, &e.Msg, e.Seq, e.SenderConn), seq: e.Seq, order: order})
					read = e.Seq
				}
			}
			n, ok := r.pushSome(ctx, jr, c, pending)
			if !ok {
				return
			}
			last = pending[n-1].seq
			clear(pending[:n]) // the loop owns the frames now
			pending = pending[n:]
			s.stats.replayed.Add(int64(n))
		}
	}
	if j.repair {
		s.stats.repaired.Add(1)
		c.loop.push([]task{{c: c, kind: taskRelease, seq: j.upTo}})
		return
	}
	// A cursor above the newest seq (a reset store, a forged value) is answered with the
	// real newest seq and cursorAhead (PROTOCOL §5); it never becomes the gap frontier.
	ahead := j.replay && j.cursor > newest
	if ahead {
		last = newest
	}
	if s.gaps != nil {
		// The frontier is what this device was actually given (its cursor and the
		// replay), not the store's newest seq: a delivery lost between the two is then
		// a hole the tracker repairs rather than one it hides. Without a cursor the
		// device starts from now.
		from := last
		if !j.replay {
			from = newest
		}
		s.gaps.start(j.user, from)
		if !j.repair && s.gaps.catchUps.Load() != j.catchUps {
			// A catch-up ran between this job's read and its start: it did not know the
			// user, and what it repairs (a broker restart's dropped deliveries, messages
			// routed elsewhere) may lie after the newest seq read here.
			s.gaps.catchUpOne(j.user)
		}
	}
	ack := max(newest, last)
	t := task{c: c, frame: s.appendInitAck(nil, c, ack, ahead), seq: ack, order: orderReplayEnd}
	if last > j.cursor {
		// After a replay, the ACK too waits for room, like every replayed frame.
		r.pushSome(ctx, jr, c, []task{t})
		return
	}
	c.loop.push([]task{t})
}

// pushSome pushes a prefix of frames (at least one) to c once they fit under half of
// MaxOutboundBytes together with c's backlog, and reports how many. So the replay never
// brings a connection that reads over the bound, and never trips the 4503 close meant
// for consumers that do not read (PROTOCOL §5: a replay that cannot go on closes with
// 1013). A frame larger than half the bound waits for an empty backlog; one larger than
// the bound (a message accepted under a larger --max-message-bytes, or near
// --max-outbound-bytes = --max-message-bytes with the envelope the server adds) cannot
// be written at all: the connection is closed with 1013 and the message logged. ok is
// false when the replay must stop (the connection is gone or being closed).
func (r *replayer) pushSome(ctx context.Context, jr *jobRun, c *conn, frames []task) (int, bool) {
	bound := r.srv.cfg.MaxOutboundBytes
	half := bound / 2
	first := len(frames[0].frame)
	if first > bound {
		r.srv.log.Error("replay frame larger than the outbound bound; closing with 1013",
			"conn", c.id, "seq", frames[0].seq, "frame_bytes", first, "max_outbound_bytes", bound)
		c.loop.push([]task{{c: c, kind: taskClose, reason: closeTryLater}})
		return 0, false
	}
	backlog, st := r.waitDrained(ctx, jr, c, max(0, half-first))
	switch st {
	case connGone:
		return 0, false
	case connTimeout:
		r.fail(c, ctx.Err())
		return 0, false
	case slowFull:
		if r.srv.slowWarn.Allow() {
			r.srv.log.Warn("too many slow replays; closing with 1013", "conn", c.id, "slow_replays", cap(r.slow))
		}
		c.loop.push([]task{{c: c, kind: taskClose, reason: closeTryLater}})
		return 0, false
	}
	budget := max(half, first) - backlog
	n, size := 0, 0
	for n < len(frames) && size+len(frames[n].frame) <= budget {
		size += len(frames[n].frame)
		n++
	}
	c.loop.push(frames[:n])
	return n, true
}

// presenceSyncWait bounds how long a CONNECT_INIT waits for its presence to be visible.
const presenceSyncWait = 2 * time.Second

// syncPresence waits until this node's presence of the users binding is visible to the
// savers, so that the newest seqs (and the replays) read next cover every message they did
// not route here (see Presence.Sync). If presence cannot be written in time the replays go
// on: a message committed in that window reaches its device through gap repair or its
// next replay. user names one of the n users, for the log.
func (r *replayer) syncPresence(ctx context.Context, user string, n int) {
	ctx, cancel := context.WithTimeout(ctx, presenceSyncWait)
	defer cancel()
	if err := r.srv.presence.Sync(ctx); err != nil && r.srv.syncWarn.Allow() {
		r.srv.log.Warn("presence not visible before replay; a message routed meanwhile waits for gap repair",
			"user", user, "users", n, "err", err)
	}
}

// drainState is what waitDrained found.
type drainState uint8

const (
	connReady   drainState = iota // backlog at most the limit asked
	connGone                      // closed, or the engine stopped
	connTimeout                   // ctx ended first
	slowFull                      // it had to wait and the slow pool is full
)

// waitDrained polls c's backlog on its loop until it is at most limit bytes, and
// returns it. Before it waits it moves the job to the slow pool (jr.yieldSlow).
func (r *replayer) waitDrained(ctx context.Context, jr *jobRun, c *conn, limit int) (int, drainState) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		backlog, open := c.loop.backlog(ctx, c)
		switch {
		case !open:
			return 0, connGone
		case backlog <= limit:
			return backlog, connReady
		case !jr.yieldSlow():
			return 0, slowFull
		}
		select {
		case <-ctx.Done():
			return 0, connTimeout
		case <-t.C:
		}
	}
}

func (r *replayer) fail(c *conn, err error) {
	r.srv.log.Warn("replay failed", "conn", c.id, "err", err)
	c.loop.push([]task{{c: c, kind: taskClose, reason: closeTryLater}})
}

// upTo returns the prefix of entries (ascending by seq) with seq <= limit.
func upTo(entries []message.Entry, limit int64) []message.Entry {
	for i := range entries {
		if entries[i].Seq > limit {
			return entries[:i]
		}
	}
	return entries
}

// Inbox is what the node reads from the store: replay and the newest seq.
type Inbox interface {
	Replay(ctx context.Context, userID string, afterSeq int64, limit int) ([]message.Entry, error)
	// LastSeqs returns the newest seq of each of users, in their order (0: empty inbox).
	LastSeqs(ctx context.Context, users []string) ([]int64, error)
}
