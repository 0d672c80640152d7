package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Errors of the RabbitMQ bus. Callers branch on them with errors.Is.
var (
	// ErrUnavailable means the broker connection is down (or the bus is not started yet);
	// the node answers ERROR unavailable.
	ErrUnavailable = errors.New("bus: broker unavailable")
	// ErrFull means the bounded publish window is full. The node answers ERROR unavailable,
	// as for every Submit error: the sender retries with the same clientMsgId.
	ErrFull = errors.New("bus: publish window full")
	// ErrBusClosed is returned by a bus, publisher or consumer used after Close.
	ErrBusClosed = errors.New("bus: bus closed")
	// ErrReturned means the broker returned a mandatory message as unroutable (no queue bound).
	ErrReturned = errors.New("bus: message returned unroutable")
	// ErrNacked means the broker refused a message (negative publisher confirm), for
	// example because the save queue reached its length bound.
	ErrNacked = errors.New("bus: message nacked by broker")
	// ErrPublishTimeout means a publish was not confirmed before its deadline. The
	// message may still have been delivered: delivery is at least once.
	ErrPublishTimeout = errors.New("bus: publish not confirmed before deadline")
)

// Config configures the RabbitMQ bus. The zero value of every field means its
// documented default; NewNodeBus and NewSaveConsumer apply the defaults (withDefaults),
// and Validate checks a Config without changing it.
type Config struct {
	// URL of the broker. Default "amqp://guest:guest@127.0.0.1:5672/".
	URL string
	// Prefix is prepended to the default names below and to node queue names
	// (NodeQueue). Default "imgate.".
	Prefix string
	// Exchange is the fanout exchange that carries persisted messages to every node.
	// Default Prefix+"fanout" ("imgate.fanout").
	Exchange string
	// RouteExchange is the direct exchange that carries persisted messages to the
	// nodes holding a device of their users (routed delivery): each node queue is
	// bound with the node's id (Record.Node) as its key. Default Prefix+"route".
	RouteExchange string
	// SaveExchange is the direct exchange nodes publish accepted records to.
	// Default Prefix+"msg" ("imgate.msg").
	SaveExchange string
	// SaveQueue is the durable queue the saver consumes. Default Prefix+"msg.save".
	SaveQueue string
	// SaveKey is the routing key binding SaveQueue to SaveExchange. Default Prefix+"msg.save".
	SaveKey string
	// SaveQueueMaxLen bounds the save queue (x-max-length, overflow reject-publish:
	// a publish over the bound is nacked and fails with ErrNacked). Default 1,000,000;
	// negative means no bound. Every node and saver must use the same value: the
	// broker refuses to redeclare a durable queue with other arguments.
	SaveQueueMaxLen int
	// NodeQueueMaxLen bounds each node queue (x-max-length, overflow drop-head: a node
	// that cannot keep up loses the oldest live pushes, which devices replay from the
	// store). Default 100,000; negative means no bound.
	NodeQueueMaxLen int
	// NodeQueueExpires deletes a node queue that has had no consumer for this long
	// (x-expires), so a dead node's queue stops collecting the fanout. Default 5m.
	NodeQueueExpires time.Duration
	// ConfirmWindow bounds publishes sent or queued but not yet confirmed, per
	// publisher. Default 1024.
	ConfirmWindow int
	// PublishTimeout is the deadline of an asynchronous publish (Submit, Relay)
	// and of the saver's fan-out publishes: a message not confirmed by then, resends
	// included, fails with ErrPublishTimeout. Default 30s.
	PublishTimeout time.Duration
	// BatchRecords and BatchBytes bound one batch a node publishes (one AMQP message).
	// Defaults 256 and 256 KiB.
	BatchRecords int
	BatchBytes   int
	// BatchLinger is the longest an accepted record waits for company while an earlier
	// batch is unconfirmed; with nothing unconfirmed a record leaves at once. Default 1ms.
	BatchLinger time.Duration
	// BatchPending bounds the records a node holds waiting for their batch; beyond it
	// Submit fails and the sender is answered ERROR unavailable. Default 16,384.
	BatchPending int
	// SaveCommits is how many transactions the saver overlaps (each on its own database
	// connection): the next starts once the previous holds its locks. Default 2.
	SaveCommits int
	// SavePipeline is how many committed batches may wait for their fan-out confirms
	// while the saver commits the next ones. Default 8.
	SavePipeline int
	// NodePrefetch is the Qos prefetch of the node queue consumer. Default 1024.
	NodePrefetch int
	// NodeBatch is the largest batch handed to the node's deliver. Default 256.
	NodeBatch int
	// SavePrefetch is the Qos prefetch of the save queue consumer. Default 1024.
	SavePrefetch int
	// SaveBatch is the most save-queue deliveries (each a node's batch of up to
	// BatchRecords) the saver commits in one transaction. Default 64.
	SaveBatch int
	// ReconnectMin and ReconnectMax bound the exponential reconnect backoff (with
	// jitter); they also bound the saver's retry delay after a handle error.
	// Defaults 100ms and 10s.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	// DialTimeout bounds TCP connect plus AMQP handshake. Default 5s.
	DialTimeout time.Duration
	// Heartbeat is the AMQP heartbeat interval: a silent broker is detected after
	// about two of them. Default 10s.
	Heartbeat time.Duration
	// CloseTimeout bounds how long Close waits for unconfirmed publishes. Default 5s.
	CloseTimeout time.Duration
	// Logger receives connection state changes and dropped messages. Default: discard.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default. It is the only place
// the defaults are written down in code.
func (c Config) withDefaults() Config {
	setStr := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setStr(&c.URL, "amqp://guest:guest@127.0.0.1:5672/")
	setStr(&c.Prefix, "imgate.")
	setStr(&c.Exchange, c.Prefix+"fanout")
	setStr(&c.RouteExchange, c.Prefix+"route")
	setStr(&c.SaveExchange, c.Prefix+"msg")
	setStr(&c.SaveQueue, c.Prefix+"msg.save")
	setStr(&c.SaveKey, c.Prefix+"msg.save")
	setInt(&c.SaveQueueMaxLen, 1_000_000)
	setInt(&c.NodeQueueMaxLen, 100_000)
	setDur(&c.NodeQueueExpires, 5*time.Minute)
	setInt(&c.ConfirmWindow, 1024)
	setDur(&c.PublishTimeout, 30*time.Second)
	setInt(&c.BatchRecords, 256)
	setInt(&c.BatchBytes, 256<<10)
	setDur(&c.BatchLinger, time.Millisecond)
	setInt(&c.BatchPending, 16384)
	setInt(&c.SaveCommits, 2)
	setInt(&c.SavePipeline, 8)
	setInt(&c.NodePrefetch, 1024)
	setInt(&c.NodeBatch, 256)
	setInt(&c.SavePrefetch, 1024)
	setInt(&c.SaveBatch, 64)
	setDur(&c.ReconnectMin, 100*time.Millisecond)
	setDur(&c.ReconnectMax, 10*time.Second)
	setDur(&c.DialTimeout, 5*time.Second)
	setDur(&c.Heartbeat, 10*time.Second)
	setDur(&c.CloseTimeout, 5*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first invalid field of c. Zero values are valid (they mean the
// default); c itself is not changed.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, err := amqp.ParseURI(c.URL); err != nil {
		return fmt.Errorf("bus: amqp url: %w", err)
	}
	switch {
	case c.Exchange == c.SaveExchange || c.RouteExchange == c.SaveExchange || c.RouteExchange == c.Exchange:
		return errors.New("bus: Exchange, RouteExchange and SaveExchange must differ")
	case c.BatchRecords < 1 || c.BatchBytes < 1 || c.BatchLinger < 0 || c.BatchPending < c.BatchRecords:
		return errors.New("bus: need BatchRecords, BatchBytes positive, BatchLinger not negative, BatchPending >= BatchRecords")
	case c.SavePipeline < 1 || c.SaveCommits < 1:
		return errors.New("bus: SavePipeline and SaveCommits must be positive")
	case c.ConfirmWindow < 1:
		return errors.New("bus: ConfirmWindow must be positive")
	case c.NodePrefetch < 1 || c.NodeBatch < 1 || c.SavePrefetch < 1 || c.SaveBatch < 1:
		return errors.New("bus: prefetch and batch sizes must be positive")
	case c.NodeBatch > c.NodePrefetch || c.SaveBatch > c.SavePrefetch:
		return errors.New("bus: a batch cannot exceed its prefetch")
	case c.PublishTimeout < 0 || c.NodeQueueExpires < time.Second:
		return errors.New("bus: PublishTimeout must be positive and NodeQueueExpires at least 1s")
	case c.ReconnectMin <= 0 || c.ReconnectMax < c.ReconnectMin:
		return errors.New("bus: need 0 < ReconnectMin <= ReconnectMax")
	case c.DialTimeout <= 0 || c.Heartbeat < 0 || c.CloseTimeout < 0:
		return errors.New("bus: DialTimeout must be positive, Heartbeat and CloseTimeout not negative")
	}
	return nil
}

// NodeQueue returns the name of the queue of the node listening on ip:port:
// Prefix+"node."+ip+"_"+port ("imgate.node.10.0.0.5_875").
func (c Config) NodeQueue(ip string, port int) string {
	return c.withDefaults().Prefix + "node." + ip + "_" + strconv.Itoa(port)
}

// rabbitBackoff returns the delay before reconnect attempt n (n >= 1): exponential
// from min, capped at max, with up to 50% random jitter subtracted.
func rabbitBackoff(n int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d - time.Duration(rand.Int64N(int64(d)/2+1))
}

// rabbitComponent is one user of a managed connection: topology, publisher or consumer.
type rabbitComponent interface {
	// start is called for every new connection, in component order, before the
	// state turns healthy. An error abandons this connection and retries later.
	start(s *rabbitSession) error
	// stop is called after the connection is gone; it waits for the goroutines
	// start launched unless they may block on a later connection.
	stop()
}

// rabbitSession is one AMQP connection and the channels opened on it.
type rabbitSession struct {
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

// channel opens a channel whose server-side close ends the whole session: the
// manager then reconnects and every component starts over on a fresh connection.
func (s *rabbitSession) channel() (*amqp.Channel, error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("bus: open channel: %w", err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		select {
		case e, ok := <-closed:
			if ok && e != nil {
				s.kill(fmt.Errorf("bus: channel closed by broker: %w", e))
			}
		case <-s.dead:
		}
	}()
	return ch, nil
}

// kill records why the session ends and closes its connection.
func (s *rabbitSession) kill(reason error) {
	s.mu.Lock()
	if s.reason == nil {
		s.reason = reason
	}
	s.mu.Unlock()
	_ = s.conn.Close()
}

// rabbit owns one AMQP connection at a time: it dials, starts the components,
// watches for the connection's end, and redials with capped exponential backoff.
type rabbit struct {
	cfg        Config
	log        *slog.Logger
	components []rabbitComponent

	closing  chan struct{}
	done     chan struct{}
	once     sync.Once
	connects atomic.Int64 // connections made, the first included

	mu      sync.Mutex
	state   error         // nil while connected
	changed chan struct{} // closed and replaced on every state change
}

// newRabbit validates cfg and starts the connection manager in the background.
func newRabbit(cfg Config, components ...rabbitComponent) *rabbit {
	r := &rabbit{
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
// wrapping ErrUnavailable (or ErrBusClosed after close) that says why.
func (r *rabbit) State() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// waitChange returns the current state and a channel closed at its next change.
func (r *rabbit) waitChange() (<-chan struct{}, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed, r.state
}

// ready waits until the connection is up, ctx ends or the manager closes.
func (r *rabbit) ready(ctx context.Context) error {
	for {
		changed, err := r.waitChange()
		if err == nil || errors.Is(err, ErrBusClosed) {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", err, ctx.Err())
		}
	}
}

func (r *rabbit) setState(err error) {
	r.mu.Lock()
	wasUp := r.state == nil
	r.state = err
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	switch {
	case err == nil && !wasUp:
		r.log.Info("bus: broker connected", "broker", BrokerAddr(r.cfg.URL))
	case err != nil && wasUp:
		r.log.Warn("bus: broker connection lost", "err", err)
	case err != nil:
		r.log.Debug("bus: broker still unavailable", "err", err)
	}
}

func (r *rabbit) run() {
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
			r.setState(ErrBusClosed)
			return
		default:
		}
		r.setState(fmt.Errorf("%w: %w", ErrUnavailable, err))
		attempt++
		t := time.NewTimer(rabbitBackoff(attempt, r.cfg.ReconnectMin, r.cfg.ReconnectMax))
		select {
		case <-t.C:
		case <-r.closing:
			t.Stop()
			r.setState(ErrBusClosed)
			return
		}
	}
}

func (r *rabbit) connect() (*rabbitSession, error) {
	conn, err := amqp.DialConfig(r.cfg.URL, amqp.Config{
		Heartbeat: r.cfg.Heartbeat,
		Dial:      amqp.DefaultDial(r.cfg.DialTimeout),
		Properties: amqp.Table{
			"connection_name": "imgate",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("bus: dial: %w", err)
	}
	s := &rabbitSession{conn: conn, dead: make(chan struct{}), log: r.log}
	s.closed = conn.NotifyClose(make(chan *amqp.Error, 1))
	s.blocked = conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	for i, c := range r.components {
		if err := c.start(s); err != nil {
			s.kill(err)
			close(s.dead)
			for j := i; j >= 0; j-- {
				r.components[j].stop()
			}
			return nil, err
		}
	}
	return s, nil
}

// watch blocks until the session's connection closes or the manager closes.
func (r *rabbit) watch(s *rabbitSession) error {
	for {
		select {
		case b, ok := <-s.blocked:
			// While the broker blocks publishing, say so: /healthz turns red and new
			// content is refused as unavailable instead of filling the confirm window.
			switch {
			case !ok:
				s.blocked = nil
			case b.Active:
				r.log.Warn("bus: broker blocks publishing", "reason", b.Reason)
				r.setState(fmt.Errorf("%w: broker blocked: %s", ErrUnavailable, b.Reason))
			default:
				r.log.Info("bus: broker unblocked")
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
				return fmt.Errorf("bus: connection closed: %w", e)
			}
			return errors.New("bus: connection closed")
		case <-r.closing:
			return ErrBusClosed
		}
	}
}

func (r *rabbit) teardown(s *rabbitSession) {
	s.kill(errors.New("bus: teardown"))
	close(s.dead)
	for i := len(r.components) - 1; i >= 0; i-- {
		r.components[i].stop()
	}
}

// close stops reconnecting, closes the connection and waits for the manager.
func (r *rabbit) close() {
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
