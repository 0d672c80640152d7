package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"imgate/message"
)

// reportInterval is how often drops, refusals and retries are logged (once, with the
// counts since the last line) while they happen.
const reportInterval = 10 * time.Second

// Sender posts offline messages to the webhook URL in signed batches.
//
// Concurrency contract: Enqueue may be called from any goroutine and never blocks on
// I/O or on the receiver; Workers goroutines take batches from the queue and POST
// them; Close may be called from any goroutine, more than once.
type Sender struct {
	cfg    Config
	log    *slog.Logger
	secret []byte
	target string // URL with any password redacted, for logs

	mu      sync.Mutex
	q       *queue // guarded by mu
	closing bool   // guarded by mu: Close was called, Enqueue drops

	wake      chan struct{}      // capacity 1: the queue got items
	stop      chan struct{}      // closed by Close: send what is queued without lingering
	ctx       context.Context    // parent of every POST and retry wait
	abort     context.CancelFunc // cancels ctx: Close's deadline passed
	closeOnce sync.Once
	workers   sync.WaitGroup
	repDone   chan struct{} // closed when the reporter returns

	stats   counters
	problem atomic.Pointer[string] // the latest refusal or failure, for the report
}

type counters struct {
	enqueued, sent, posts, retries                                    atomic.Int64
	droppedOverflow, droppedRejected, droppedExpired, droppedShutdown atomic.Int64
}

// Stats is a snapshot of a Sender's counts since New.
type Stats struct {
	// Enqueued counts messages handed to Enqueue while open; Sent those a POST
	// delivered (2xx); Posts the POSTs that succeeded; Retries the POSTs retried after a
	// network error, a timeout, 429 or 5xx.
	Enqueued, Sent, Posts, Retries int64
	// DroppedOverflow counts messages dropped from a full queue (the oldest waiting);
	// DroppedRejected those in a POST refused with a status other than 2xx, 429 or 5xx;
	// DroppedExpired those whose batch was retried for GiveUpAfter without success;
	// DroppedShutdown those not delivered when Close's deadline passed, or enqueued
	// after Close.
	DroppedOverflow, DroppedRejected, DroppedExpired, DroppedShutdown int64
	// Queued is the number of messages waiting now (not counting POSTs in flight).
	Queued int
}

// New validates cfg and starts the Sender's goroutines; stop them with Close.
func New(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	u, _ := url.Parse(cfg.URL) // Validate parsed it
	s := &Sender{
		cfg: cfg, log: cfg.Logger, secret: []byte(cfg.Secret), target: u.Redacted(),
		q:    newQueue(cfg.QueueLen, cfg.QueueBytes),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), repDone: make(chan struct{}),
	}
	s.ctx, s.abort = context.WithCancel(context.Background())
	for range cfg.Workers {
		s.workers.Add(1)
		go s.work()
	}
	go s.reporter()
	return s, nil
}

// Enqueue queues one notification per entry and returns at once: it encodes each
// entry (codec.AppendChatMsg, with the entry's seq) and appends it to the bounded queue,
// dropping the oldest waiting entries when the queue is full. It never waits for the
// receiver. The caller keeps batch: Enqueue keeps none of it.
func (s *Sender) Enqueue(batch []message.Offline) {
	if len(batch) == 0 {
		return
	}
	now := time.Now()
	items := make([]item, len(batch))
	for i := range batch {
		o := &batch[i]
		m := &o.Msg
		size := 256 + len(o.UserID) + len(m.SenderID) + len(m.ReceiverID) + len(m.Msg) + len(m.ClientMsgID) + len(m.Extra)
		items[i] = item{json: appendItem(make([]byte, 0, size), o), at: now}
	}
	dropped := 0
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.stats.droppedShutdown.Add(int64(len(items)))
		return
	}
	for _, it := range items {
		dropped += s.q.push(it)
	}
	s.mu.Unlock()
	s.stats.enqueued.Add(int64(len(items)))
	if dropped > 0 {
		s.stats.droppedOverflow.Add(int64(dropped))
	}
	s.signal()
}

// signal wakes one waiting worker.
func (s *Sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Target is the URL the Sender posts to, any password in it redacted: safe to log.
func (s *Sender) Target() string { return s.target }

// Stats returns the counts since New.
func (s *Sender) Stats() Stats {
	s.mu.Lock()
	queued := s.q.n
	s.mu.Unlock()
	c := &s.stats
	return Stats{
		Enqueued: c.enqueued.Load(), Sent: c.sent.Load(), Posts: c.posts.Load(), Retries: c.retries.Load(),
		DroppedOverflow: c.droppedOverflow.Load(), DroppedRejected: c.droppedRejected.Load(),
		DroppedExpired: c.droppedExpired.Load(), DroppedShutdown: c.droppedShutdown.Load(),
		Queued: queued,
	}
}

// Close stops taking messages and sends what is queued at once, retrying as usual,
// until everything is sent or ctx ends; then it cancels the POSTs in flight, drops what
// is left (Stats.DroppedShutdown) and returns an error saying how many were lost.
func (s *Sender) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		close(s.stop)
	})
	done := make(chan struct{})
	go func() {
		s.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.abort()
		<-done
	}
	s.abort()
	<-s.repDone
	s.cfg.Client.CloseIdleConnections()
	if n := s.stats.droppedShutdown.Load(); n > 0 {
		return fmt.Errorf("webhook: %d messages not delivered before the shutdown deadline", n)
	}
	return nil
}

// take waits for a batch to send: MaxBatch messages or MaxBatchBytes waiting, or the
// oldest waiting for Linger, or anything at all once closing. It returns nil when the
// Sender is closed and its queue empty, or aborted (what was left is counted dropped).
func (s *Sender) take() []item {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.mu.Lock()
		if s.ctx.Err() != nil {
			n := s.q.n
			for s.q.n > 0 {
				s.q.pop()
			}
			s.mu.Unlock()
			s.stats.droppedShutdown.Add(int64(n))
			return nil
		}
		var timeout <-chan time.Time
		switch {
		case s.q.n > 0:
			age := time.Since(s.q.peek().at)
			if s.closing || s.q.n >= s.cfg.MaxBatch || s.q.bytes >= s.cfg.MaxBatchBytes || age >= s.cfg.Linger {
				batch := s.takeLocked()
				more := s.q.n > 0
				s.mu.Unlock()
				if more {
					s.signal() // another worker may take the rest
				}
				return batch
			}
			if timer == nil {
				timer = time.NewTimer(s.cfg.Linger - age)
			} else {
				timer.Reset(s.cfg.Linger - age)
			}
			timeout = timer.C
		case s.closing:
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-timeout:
		case <-s.stop:
		case <-s.ctx.Done():
		}
	}
}

// takeLocked pops the oldest messages for one POST: at most MaxBatch, and while their
// bytes stay within MaxBatchBytes (the first goes in any case). s.mu is held.
func (s *Sender) takeLocked() []item {
	var batch []item
	bytes := 0
	for s.q.n > 0 && len(batch) < s.cfg.MaxBatch {
		next := len(s.q.peek().json)
		if len(batch) > 0 && bytes+next > s.cfg.MaxBatchBytes {
			break
		}
		batch = append(batch, s.q.pop())
		bytes += next
	}
	return batch
}

// work is one worker: it takes batches and sends them until take says stop.
func (s *Sender) work() {
	defer s.workers.Done()
	var body []byte
	for {
		batch := s.take()
		if batch == nil {
			return
		}
		body = appendBody(body[:0], batch)
		s.send(body, int64(len(batch)))
	}
}

// reporter logs what went wrong since its previous line, every reportInterval, and
// once more when the Sender is closed.
func (s *Sender) reporter() {
	defer close(s.repDone)
	t := time.NewTicker(reportInterval)
	defer t.Stop()
	var last Stats
	for {
		select {
		case <-t.C:
			last = s.report(last)
		case <-s.ctx.Done():
			s.report(last)
			return
		}
	}
}

// report logs one WARN with the drops and retries since last, if there were any.
func (s *Sender) report(last Stats) Stats {
	st := s.Stats()
	d := Stats{
		Retries: st.Retries - last.Retries, DroppedOverflow: st.DroppedOverflow - last.DroppedOverflow,
		DroppedRejected: st.DroppedRejected - last.DroppedRejected, DroppedExpired: st.DroppedExpired - last.DroppedExpired,
		DroppedShutdown: st.DroppedShutdown - last.DroppedShutdown,
	}
	if d != (Stats{}) {
		var problem string
		if p := s.problem.Load(); p != nil {
			problem = *p
		}
		s.log.Warn("webhook: messages dropped or retried", "url", s.target,
			"droppedQueueFull", d.DroppedOverflow, "droppedRefused", d.DroppedRejected,
			"droppedExpired", d.DroppedExpired, "droppedShutdown", d.DroppedShutdown,
			"retries", d.Retries, "queued", st.Queued, "lastProblem", problem)
	}
	return st
}
