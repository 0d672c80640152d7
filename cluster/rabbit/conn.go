package rabbit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"imgate/backoff"
)

// Errors of a managed connection and its publishers. Callers branch on them with errors.Is.
var (
	// ErrUnavailable means the broker connection is down (or not made yet).
	ErrUnavailable = errors.New("rabbit: broker unavailable")
	// ErrFull means the bounded publish window (Config.ConfirmWindow) is full.
	ErrFull = errors.New("rabbit: publish window full")
	// ErrClosed is returned by a connection or publisher used after it was closed.
	ErrClosed = errors.New("rabbit: closed")
	// ErrReturned means the broker returned a mandatory message as unroutable (no queue bound).
	ErrReturned = errors.New("rabbit: message returned unroutable")
	// ErrNacked means the broker refused a message (negative publisher confirm), for
	// example because the save queue reached its length bound.
	ErrNacked = errors.New("rabbit: message nacked by broker")
	// ErrPublishTimeout means a publish was not confirmed before its deadline. The
	// message may still have been delivered: delivery is at least once.
	ErrPublishTimeout = errors.New("rabbit: publish not confirmed before deadline")
)

// Config configures a managed connection and its publishers. The zero value of every
// field means its documented default (WithDefaults).
type Config struct {
	// URL of the broker. Default "amqp://guest:guest@127.0.0.1:5672/".
	URL string
	// Name is the AMQP connection_name the broker shows. Default "imgate".
	Name string
	// ConfirmWindow bounds publishes sent or queued but not yet confirmed, per
	// publisher. Default 1024.
	ConfirmWindow int
	// ReconnectMin and ReconnectMax bound the exponential reconnect backoff (with
	// jitter). Defaults 100ms and 10s.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// ProbeInterval is how often a manager waiting out its backoff asks the broker
	// whether it answers (see probe): an answer after a silence ends the wait at once,
	// so a returning broker is reconnected within about one interval whatever the
	// backoff has grown to. Default 200ms.
	ProbeInterval time.Duration
	// DialTimeout bounds TCP connect plus AMQP handshake. Default 5s.
	DialTimeout time.Duration
	// Heartbeat is the AMQP heartbeat interval: a silent broker is detected after
	// about two of them. Default 10s.
	Heartbeat time.Duration
	// CloseTimeout bounds how long a publisher's Drain waits. Default 5s.
	CloseTimeout time.Duration
	// Logger receives connection state changes. Default: discard.
	Logger *slog.Logger
	// ConfirmLatency, when set, is called with the time from each publish to the
	// broker's confirm of it (ack or nack), from the publisher's confirm goroutine: it
	// must not block (a histogram's Observe). Default: none.
	ConfirmLatency func(time.Duration)
}

// WithDefaults returns c with every zero field set to its default: the one place they are
// written down.
func (c Config) WithDefaults() Config {
	if c.URL == "" {
		c.URL = "amqp://guest:guest@127.0.0.1:5672/"
	}
	if c.Name == "" {
		c.Name = "imgate"
	}
	if c.ConfirmWindow == 0 {
		c.ConfirmWindow = 1024
	}
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{{&c.ReconnectMin, 100 * time.Millisecond},
		{&c.ReconnectMax, 10 * time.Second}, {&c.ProbeInterval, 200 * time.Millisecond}, {&c.DialTimeout, 5 * time.Second},
		{&c.Heartbeat, 10 * time.Second}, {&c.CloseTimeout, 5 * time.Second}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first invalid field of c. Zero values are valid (they mean the
// default); c itself is not changed.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if _, err := amqp.ParseURI(c.URL); err != nil {
		return fmt.Errorf("amqp url: %w", err)
	}
	switch {
	case c.ConfirmWindow < 1:
		return errors.New("ConfirmWindow must be positive")
	case c.ReconnectMin <= 0 || c.ReconnectMax < c.ReconnectMin:
		return errors.New("need 0 < ReconnectMin <= ReconnectMax")
	case c.ProbeInterval < 0:
		return errors.New("ProbeInterval must not be negative")
	case c.DialTimeout <= 0 || c.Heartbeat < 0 || c.CloseTimeout < 0:
		return errors.New("DialTimeout must be positive, Heartbeat and CloseTimeout not negative")
	}
	return nil
}

// Backoff returns the delay before reconnect attempt n (n >= 1): backoff.Delay,
// exponential from min, capped at max, with up to 50% random jitter subtracted.
func Backoff(n int, min, max time.Duration) time.Duration {
	return backoff.Delay(n, min, max)
}

// Component is one user of a managed connection: a topology, a Publisher or a Consumer.
type Component interface {
	// start is called for every new connection, in component order, before the
	// state turns healthy. An error abandons this connection and retries later.
	Start(s *Session) error
	// stop is called after the connection is gone; it waits for the goroutines
	// start launched unless they may block on a later connection.
	Stop()
}

// Session is one AMQP connection and the channels opened on it.
type Session struct {
	conn   *amqp.Connection
	closed chan *amqp.Error // conn's NotifyClose, registered right after the dial
	// blocked is conn's NotifyBlocked: a broker under a resource alarm keeps the
	// connection and its heartbeats but takes no publishes.
	blocked chan amqp.Blocking
	dead    chan struct{} // closed after conn is closed
	log     *slog.Logger

	mu     sync.Mutex
	reason error // first cause of the session's end
}

// Channel opens a channel whose server-side close ends the whole session: the
// manager then reconnects and every component starts over on a fresh connection.
func (s *Session) Channel() (*amqp.Channel, error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("rabbit: open channel: %w", err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		select {
		case e, ok := <-closed:
			if ok && e != nil {
				s.Kill(fmt.Errorf("rabbit: channel closed by broker: %w", e))
			}
		case <-s.dead:
		}
	}()
	return ch, nil
}

// Kill records why the session ends and closes its connection.
func (s *Session) Kill(reason error) {
	s.mu.Lock()
	if s.reason == nil {
		s.reason = reason
	}
	s.mu.Unlock()
	_ = s.conn.Close()
}

// Conn owns one AMQP connection at a time: it dials, starts the components,
// watches for the connection's end, and redials with capped exponential backoff.
type Conn struct {
	cfg        Config
	log        *slog.Logger
	components []Component

	closing  chan struct{}
	done     chan struct{}
	once     sync.Once
	connects atomic.Int64 // connections made, the first included
	silent   atomic.Int64 // probes the broker did not answer (tests wait for one)

	mu      sync.Mutex
	state   error         // nil while connected
	changed chan struct{} // closed and replaced on every state change
}

// New starts the connection manager in the background: it connects to cfg.URL and starts
// the components, in order, on every connection it makes.
func New(cfg Config, components ...Component) *Conn {
	cfg = cfg.WithDefaults()
	r := &Conn{
		cfg:        cfg,
		log:        cfg.Logger,
		components: components,
		closing:    make(chan struct{}),
		done:       make(chan struct{}),
		state:      fmt.Errorf("%w: connecting", ErrUnavailable),
		changed:    make(chan struct{}),
	}
	go r.run()
	return r
}

// State returns nil while connected with every component started, else an error
// wrapping ErrUnavailable (or ErrClosed after Close) that says why.
func (r *Conn) State() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// waitChange returns the current state and a channel closed at its next change.
func (r *Conn) waitChange() (<-chan struct{}, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed, r.state
}

// Ready waits until the connection is up, ctx ends or the manager closes.
func (r *Conn) Ready(ctx context.Context) error {
	for {
		changed, err := r.waitChange()
		if err == nil || errors.Is(err, ErrClosed) {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		}
	}
}

func (r *Conn) setState(err error) {
	r.mu.Lock()
	wasUp := r.state == nil
	r.state = err
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	switch {
	case err == nil && !wasUp:
		r.log.Info("rabbit: broker connected", "broker", BrokerAddr(r.cfg.URL))
	case err != nil && wasUp:
		r.log.Warn("rabbit: broker connection lost", "err", err)
	case err != nil:
		r.log.Debug("rabbit: broker still unavailable", "err", err)
	}
}

func (r *Conn) run() {
	defer close(r.done)
	attempt := 0
	for {
		s, err := r.connect()
		if err == nil {
			attempt = 0
			r.connects.Add(1)
			r.setState(nil)
			err = r.watch(s)
			r.teardown(s)
		}
		select {
		case <-r.closing:
			r.setState(ErrClosed)
			return
		default:
		}
		r.setState(fmt.Errorf("%w: %w", ErrUnavailable, err))
		attempt++
		if !r.wait(Backoff(attempt, r.cfg.ReconnectMin, r.cfg.ReconnectMax)) {
			r.setState(ErrClosed)
			return
		}
	}
}

// wait waits out a reconnect backoff of d and reports false when the manager is
// closing. Every ProbeInterval it probes the broker; once a probe went unanswered, the
// next answered one ends the wait: the broker is back, and the next dial should not
// wait for a backoff grown during the outage. A broker that answers all along (it
// refuses the login, say) is retried at the backoff's pace.
func (r *Conn) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(r.cfg.ProbeInterval)
	defer tick.Stop()
	silent := false
	for {
		select {
		case <-t.C:
			return true
		case <-r.closing:
			return false
		case <-tick.C:
			err := probe(r.cfg.URL, min(r.cfg.DialTimeout, time.Second))
			switch {
			case err != nil:
				silent = true
				r.silent.Add(1)
			case silent:
				r.log.Info("rabbit: broker answers again; reconnecting", "broker", BrokerAddr(r.cfg.URL))
				return true
			}
		}
	}
}

// probe asks the broker of url whether it answers: it opens a TCP connection, sends the
// AMQP 0-9-1 protocol header and reads the first byte of the broker's reply, which is a
// method frame (connection.start), then hangs up. A listener that accepts and closes (a
// proxy in front of a broker that is down) does not count as an answer. For amqps the
// TCP connection alone is the answer. timeout bounds the whole probe.
func probe(url string, timeout time.Duration) error {
	u, err := amqp.ParseURI(url)
	if err != nil {
		return err
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(u.Host, strconv.Itoa(u.Port)), timeout)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if u.Scheme == "amqps" {
		return nil
	}
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		return err
	}
	var frame [1]byte
	if _, err := io.ReadFull(c, frame[:]); err != nil {
		return err
	}
	if frame[0] != 1 { // AMQP 0-9-1 frame type 1: a method frame
		return fmt.Errorf("rabbit: probe: frame type %d, want a method frame", frame[0])
	}
	return nil
}

func (r *Conn) connect() (*Session, error) {
	conn, err := amqp.DialConfig(r.cfg.URL, amqp.Config{
		Heartbeat: r.cfg.Heartbeat,
		Dial:      amqp.DefaultDial(r.cfg.DialTimeout),
		Properties: amqp.Table{
			"connection_name": r.cfg.Name,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("rabbit: dial: %w", err)
	}
	s := &Session{conn: conn, dead: make(chan struct{}), log: r.log}
	s.closed = conn.NotifyClose(make(chan *amqp.Error, 1))
	s.blocked = conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	for i, c := range r.components {
		if err := c.Start(s); err != nil {
			s.Kill(err)
			close(s.dead)
			for j := i; j >= 0; j-- {
				r.components[j].Stop()
			}
			return nil, err
		}
	}
	return s, nil
}

// watch blocks until the session's connection closes or the manager closes.
func (r *Conn) watch(s *Session) error {
	for {
		select {
		case b, ok := <-s.blocked:
			// While the broker blocks publishing, say so: /healthz turns red and new
			// content is refused as unavailable instead of filling the confirm window.
			switch {
			case !ok:
				s.blocked = nil
			case b.Active:
				r.log.Warn("rabbit: broker blocks publishing", "reason", b.Reason)
				r.setState(fmt.Errorf("%w: broker blocked: %s", ErrUnavailable, b.Reason))
			default:
				r.log.Info("rabbit: broker unblocked")
				r.setState(nil)
			}
			continue
		case e, ok := <-s.closed:
			s.mu.Lock()
			reason := s.reason
			s.mu.Unlock()
			if reason != nil {
				return reason
			}
			if ok && e != nil {
				return fmt.Errorf("rabbit: connection closed: %w", e)
			}
			return errors.New("rabbit: connection closed")
		case <-r.closing:
			return ErrClosed
		}
	}
}

func (r *Conn) teardown(s *Session) {
	s.Kill(errors.New("rabbit: teardown"))
	close(s.dead)
	for i := len(r.components) - 1; i >= 0; i-- {
		r.components[i].Stop()
	}
}

// Close stops reconnecting, closes the connection and waits for the manager.
func (r *Conn) Close() {
	r.once.Do(func() { close(r.closing) })
	<-r.done
}

// BrokerAddr names the broker of an AMQP URL for logs and error messages without its
// credentials: "host:port/vhost" ("?" when the URL does not parse).
func BrokerAddr(url string) string {
	u, err := amqp.ParseURI(url)
	if err != nil {
		return "?"
	}
	return net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) + "/" + strings.TrimPrefix(u.Vhost, "/")
}

// Conn returns the session's AMQP connection, for a channel whose close must not end the
// session (a declaration that may fail and is retried another way).
func (s *Session) Conn() *amqp.Connection { return s.conn }

// Connects counts the connections made, the first included.
func (r *Conn) Connects() int64 { return r.connects.Load() }
