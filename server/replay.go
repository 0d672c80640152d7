package server

import (
	"context"
	"sync"
	"time"

	"imgate/saver"
)

// replayJob is the store work of one CONNECT_INIT: replay after cursor (when asked) and
// the newest seq for the ACK.
type replayJob struct {
	c      *conn
	user   string
	cursor int64
	replay bool
	// repair: a gap repair (see gaps.go): replay after cursor up to upTo, no ACK.
	repair bool
	upTo   int64
}

// replayer runs replay jobs on a fixed set of goroutines with a bounded queue, so that
// event loops never wait for the store.
type replayer struct {
	srv  *Server
	jobs chan replayJob
	stop chan struct{}
	wg   sync.WaitGroup
}

func newReplayer(srv *Server) *replayer {
	return &replayer{srv: srv, jobs: make(chan replayJob, srv.cfg.ReplayQueue), stop: make(chan struct{})}
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

// close stops the workers; queued jobs are dropped (their connections are closing).
func (r *replayer) close() {
	close(r.stop)
	r.wg.Wait()
}

func (r *replayer) work() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case j := <-r.jobs:
			r.run(j)
		}
	}
}

// run replays j.user's inbox after j.cursor to j.c page by page, then sends the ACK of
// CONNECT_INIT. Pages wait for the connection's queue to drain below half its bound, so
// a long inbox never trips the slow-consumer close.
func (r *replayer) run(j replayJob) {
	s := r.srv
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := j.c
	last := j.cursor
	if j.replay || j.repair {
		for {
			entries, err := s.inbox.Replay(ctx, j.user, last, s.cfg.ReplayPage)
			if err != nil {
				r.fail(c, err)
				return
			}
			if j.repair {
				entries = upTo(entries, j.upTo)
			}
			if len(entries) == 0 {
				break
			}
			tasks := make([]task, 0, len(entries))
			for i := range entries {
				e := &entries[i]
				tasks = append(tasks, task{c: c, frame: appendDelivery(nil, &e.Msg, e.Seq, e.SenderConn)})
				last = e.Seq
			}
			c.loop.push(tasks)
			s.stats.replayed.Add(int64(len(entries)))
			if len(entries) < s.cfg.ReplayPage {
				break
			}
			if !r.waitDrained(ctx, c) {
				return
			}
		}
	}
	if j.repair {
		s.stats.repaired.Add(1)
		return
	}
	seq, err := s.inbox.LastSeq(ctx, j.user)
	if err != nil {
		r.fail(c, err)
		return
	}
	seq = max(seq, last)
	if s.gaps != nil {
		s.gaps.start(j.user, seq)
	}
	c.loop.push([]task{{c: c, frame: s.appendInitAck(nil, c, seq)}})
}

// upTo returns the prefix of entries (ascending by seq) with seq <= limit.
func upTo(entries []saver.Entry, limit int64) []saver.Entry {
	for i := range entries {
		if entries[i].Seq > limit {
			return entries[:i]
		}
	}
	return entries
}

// waitDrained polls until c's queue is below half its bound; false when ctx ends first.
func (r *replayer) waitDrained(ctx context.Context, c *conn) bool {
	half := r.srv.cfg.MaxOutboundBytes / 2
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for c.loop.queuedBytes(c) > half {
		select {
		case <-ctx.Done():
			return false
		case <-r.stop:
			return false
		case <-t.C:
		}
	}
	return true
}

func (r *replayer) fail(c *conn, err error) {
	r.srv.log.Warn("replay failed", "conn", c.id, "err", err)
	c.loop.push([]task{{c: c, kind: taskClose, reason: closeTryLater}})
}

// Inbox is what the node reads from the store: replay and the newest seq.
type Inbox interface {
	Replay(ctx context.Context, userID string, afterSeq int64, limit int) ([]saver.Entry, error)
	LastSeq(ctx context.Context, userID string) (int64, error)
}
