package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"imgate/codec"
)

// State is the state of a Client's connection.
type State int32

// States, in the order a connection goes through them.
const (
	StateDisconnected State = iota // not connected: before Run, or waiting to reconnect
	StateConnecting                // asking the dispatcher, dialling, waiting for the ACK of CONNECT_INIT
	StateConnected                 // bound: CONNECT_INIT acknowledged, replay done
	StateStopped                   // Run returned: Close, its context ended, or a permanent error
)

func (s State) String() string {
	switch s {
	case StateDisconnected:
		return "disconnected"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateStopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Stats are a Client's counters since New.
type Stats struct {
	Connects   int64 // connection attempts (dispatcher asked or URL dialled)
	Binds      int64 // connections whose CONNECT_INIT was acknowledged
	Resent     int64 // messages written again on a new connection, unacknowledged on the old one
	Duplicates int64 // delivered messages dropped because their msgId was already seen
	Overflows  int64 // times the queue was full: the connection's further messages were left out, then replayed
	Dropped    int64 // receipts dropped because the queue was full or overflowed (live-only hints)
}

// Client is one device of one user: it keeps a connection to a node, reconnects, replays
// from its cursor, drops duplicates and resends unacknowledged messages (doc.go). New
// builds it, Run runs it; Send, Sign, State, Stats and Close may be called from any
// goroutine, before, during and after Run.
type Client struct {
	cfg       Config
	log       *slog.Logger
	keepalive []byte // the KEEPALIVE envelope

	slots   chan struct{} // MaxPending tokens: one per outstanding Send
	queue   chan item     // received, not yet handled; bound QueueLen
	changed chan struct{} // cap 1: the state changed
	closed  chan struct{} // closed by Close
	done    chan struct{} // closed when Run has returned (or Close without Run)

	closeOnce sync.Once

	// overflowed is the connection whose messages stopped being queued because the queue
	// was full; the handler goroutine ends it once the queue is down to half (handle.go).
	overflowed atomic.Pointer[wsConn]

	cursorMu sync.Mutex // guards the stored cursor: Save is called under it
	epoch    uint64     // incremented by a cursorAhead reset: older items store nothing
	saved    int64      // the stored cursor
	hasSaved bool       // something is stored
	failing  bool       // the last Save failed (logged once)

	mu      sync.Mutex // guards the fields below
	ran     bool       // Run was called, or Close came first (then Run must not run)
	conn    *wsConn    // the bound connection; nil when none
	pending map[string]*pending
	order   []*pending // pending in send order; resolved ones are skipped and compacted
	state   State
	lastErr error // what ended the last connection
	stopped bool  // Run ended or Close came first: Sends fail

	stats struct {
		connects, binds, resent, duplicates, overflows, dropped atomic.Int64
	}
}

// pending is a Send waiting for its ACK or ERROR.
type pending struct {
	id    string
	frame []byte      // the envelope, written again after a reconnect
	done  chan result // cap 1: receives exactly one result
	conn  *wsConn     // the connection it was last written on; guarded by Client.mu
}

type result struct {
	ack Ack
	err error
}

// New checks cfg and builds a Client. Nothing connects until Run.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{
		cfg:       cfg,
		log:       cfg.Logger.With("user", cfg.UserID),
		keepalive: codec.AppendEnvelope(nil, &codec.Envelope{ChatMsg: &codec.ChatMsg{SenderID: cfg.UserID, MsgType: codec.Keepalive}}),
		slots:     make(chan struct{}, cfg.MaxPending),
		queue:     make(chan item, cfg.QueueLen),
		changed:   make(chan struct{}, 1),
		closed:    make(chan struct{}),
		done:      make(chan struct{}),
		pending:   map[string]*pending{},
	}
	return c, nil
}

// State returns the connection state and the error that ended the last connection.
func (c *Client) State() (State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.lastErr
}

// Stats returns the Client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Connects: c.stats.connects.Load(), Binds: c.stats.binds.Load(), Resent: c.stats.resent.Load(),
		Duplicates: c.stats.duplicates.Load(), Overflows: c.stats.overflows.Load(), Dropped: c.stats.dropped.Load(),
	}
}

func (c *Client) setState(s State, err error) {
	c.mu.Lock()
	c.state = s
	if err != nil {
		c.lastErr = err
	}
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Close stops the Client: the connection is closed with 1000, Run returns nil, pending and
// later Sends fail with ErrClosed. It waits for Run to return and may be called more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.mu.Lock()
		first := !c.ran
		c.ran = true
		c.mu.Unlock()
		if first { // no Run to finish the Client
			c.finish(ErrClosed)
			close(c.done)
		}
	})
	<-c.done
	return nil
}

// finish fails every pending Send with err and refuses new ones.
func (c *Client) finish(err error) {
	c.mu.Lock()
	c.stopped = true
	c.state = StateStopped
	c.conn = nil
	ps := c.pending
	c.order, c.pending = nil, map[string]*pending{}
	c.mu.Unlock()
	for _, p := range ps {
		p.done <- result{err: err}
		<-c.slots
	}
}

// Send sends m to m.ReceiverID or m.GroupID and waits for the node's ACK (the returned Ack)
// or ERROR (a *ServerError: errors.Is(err, ErrUnavailable), …). m.SenderID is set to the
// Client's user and m.Type defaults to codec.Words. Without a ClientMsgID one is generated;
// the Ack carries it.
//
// While the Client is not connected the message waits, and a message written on a
// connection that ended before its ACK is written again on the next one with the same
// ClientMsgID: the node acknowledges it once, with the first msgId, and delivers it once
// (with a durable store; with --store none a resend may be delivered twice). When ctx ends
// first Send returns ctx's error and forgets the message, which may still have reached the
// node: send it again with the same ClientMsgID to learn its fate. At most
// Config.MaxPending Sends are outstanding; more wait for room (or ctx).
func (c *Client) Send(ctx context.Context, m Message) (Ack, error) {
	if m.Type == 0 {
		m.Type = codec.Words
	}
	m.SenderID = c.cfg.UserID
	if m.ClientMsgID == "" {
		m.ClientMsgID = newClientMsgID()
	}
	if err := m.validate(); err != nil {
		return Ack{}, err
	}
	cm, err := toChatMsg(&m)
	if err != nil {
		return Ack{}, err
	}
	frame := codec.AppendEnvelope(nil, &codec.Envelope{ChatMsg: &cm})
	if len(frame) > c.cfg.MaxMessageBytes {
		return Ack{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(frame), c.cfg.MaxMessageBytes)
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return Ack{}, ctx.Err()
	case <-c.done:
		return Ack{}, ErrClosed
	}
	p := &pending{id: m.ClientMsgID, frame: frame, done: make(chan result, 1)}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		<-c.slots
		return Ack{}, ErrClosed
	}
	if _, dup := c.pending[p.id]; dup {
		c.mu.Unlock()
		<-c.slots
		return Ack{}, fmt.Errorf("%w: clientMsgId %q is already being sent", ErrInvalid, p.id)
	}
	c.pending[p.id] = p
	if len(c.order) >= 2*cap(c.slots) {
		c.compactLocked() // resolved ones leave order here and at each bind: it stays bounded
	}
	c.order = append(c.order, p)
	wc := c.conn
	p.conn = wc
	c.mu.Unlock()
	if wc != nil {
		if err := wc.write(ws.OpText, frame); err != nil {
			// The connection is failing: end it; the next one resends p.
			c.log.Debug("write failed, reconnecting", "err", err)
			wc.abort()
		}
	}
	select {
	case r := <-p.done:
		return r.ack, r.err
	case <-ctx.Done():
		if c.forget(p) {
			return Ack{}, ctx.Err()
		}
		r := <-p.done // resolved meanwhile
		return r.ack, r.err
	}
}

// compactLocked drops the resolved entries of order; callers hold mu.
func (c *Client) compactLocked() {
	c.order = slices.DeleteFunc(c.order, func(p *pending) bool { return c.pending[p.id] != p })
}

// forget removes p when it is still pending; false: it was resolved meanwhile.
func (c *Client) forget(p *pending) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[p.id] != p {
		return false
	}
	delete(c.pending, p.id)
	<-c.slots
	return true
}

// resolve completes the pending Send id with r; false when there is none.
func (c *Client) resolve(id string, r result) bool {
	c.mu.Lock()
	p := c.pending[id]
	if p != nil {
		delete(c.pending, id)
	}
	c.mu.Unlock()
	if p == nil {
		return false
	}
	p.done <- r
	<-c.slots
	return true
}

// Sign sends a receipt (SIGNED): this device shows message msgID that user `to` sent. It
// returns once the receipt is written; receipts are not acknowledged, stored or queued, so
// while no connection is bound it returns ErrNotConnected.
func (c *Client) Sign(ctx context.Context, to string, msgID int64) error {
	if to == "" || msgID <= 0 {
		return fmt.Errorf("%w: a receipt needs the sender and the msgId", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	wc, stopped := c.conn, c.stopped
	c.mu.Unlock()
	if stopped {
		return ErrClosed
	}
	if wc == nil {
		return ErrNotConnected
	}
	frame := codec.AppendEnvelope(nil, &codec.Envelope{ChatMsg: &codec.ChatMsg{
		SenderID: c.cfg.UserID, ReceiverID: to, MsgType: codec.Signed, MsgID: msgID,
	}})
	if err := wc.write(ws.OpText, frame); err != nil {
		wc.abort()
		return fmt.Errorf("client: receipt not sent: %w", err)
	}
	return nil
}

// newClientMsgID returns a random clientMsgId (26 characters of base32, 130 bits).
func newClientMsgID() string { return rand.Text() }

// errRunTwice is returned by a second Run.
var errRunTwice = errors.New("client: Run called twice")

// Run connects and keeps the Client connected until ctx ends (it returns ctx's error), Close
// is called (nil) or the node refuses it for good (the error, wrapping a *CloseError or
// *HTTPError whose Permanent is true: errors.Is(err, ErrUnauthorized), …). Run once per
// Client; OnMessage, OnReceipt and OnState are called on a goroutine of Run's.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	again := c.ran
	c.ran = true
	c.mu.Unlock()
	if again {
		select {
		case <-c.closed:
			return nil // Close came first and finished the Client
		default:
			return errRunTwice
		}
	}
	defer close(c.done)
	select {
	case <-c.closed: // Close came between: it waits for this Run
		c.finish(ErrClosed)
		return nil
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	seq, has, err := c.cfg.Cursor.Load()
	if err != nil {
		err = fmt.Errorf("client: load cursor: %w", err)
		c.finish(err)
		return err
	}
	c.cursorMu.Lock()
	c.saved, c.hasSaved = seq, has
	c.cursorMu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.handle(ctx)
	}()
	err = c.loop(ctx, seq, has)
	cancel()
	wg.Wait()
	select {
	case <-c.closed:
		err = nil
	default:
	}
	fail := err
	if fail == nil {
		fail = ErrClosed
	}
	c.finish(fail)
	if c.cfg.OnState != nil {
		c.cfg.OnState(StateStopped, err)
	}
	return err
}

// loop runs sessions until ctx ends or one ends for good.
func (c *Client) loop(ctx context.Context, cursor int64, hasCursor bool) error {
	r := runner{
		c: c, bo: backoff{min: c.cfg.MinBackoff, max: c.cfg.MaxBackoff}, seen: newSeenSet(c.cfg.DedupeLen),
		cursor: cursor, hasCursor: hasCursor,
	}
	for {
		s := r.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if permanent(s.err) {
			c.log.Error("not reconnecting: the node refused this client for good", "err", s.err)
			return fmt.Errorf("client: stopped: %w", s.err)
		}
		if s.bound >= c.cfg.MaxBackoff {
			r.bo.reset()
		}
		var delay time.Duration
		if !errors.Is(s.err, errCursorReset) && !errors.Is(s.err, errOverflow) {
			delay = r.bo.next() // those two end a healthy connection on purpose: reconnect at once
		}
		var he *HTTPError
		if errors.As(s.err, &he) {
			delay += he.RetryAfter
		}
		c.setState(StateDisconnected, s.err)
		c.log.Info("connection ended, reconnecting", "err", s.err, "in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
