package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"imgate/codec"
	"imgate/message"
)

func busTestURL() string {
	if u := os.Getenv("IMGATE_TEST_AMQP"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

func busRandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// busAdmin opens a direct connection for test setup and cleanup, failing the test
// with instructions when RabbitMQ does not answer.
func busAdmin(t *testing.T) *amqp.Connection {
	t.Helper()
	conn, err := amqp.DialConfig(busTestURL(), amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
	if err != nil {
		t.Fatalf("RabbitMQ at %s does not answer (%v): run scripts/services.sh up", busTestURL(), err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// busTestConfig returns a config with a unique name prefix whose exchanges and
// queues (and the node queues listed in *nodeQueues at cleanup) are deleted at the end.
func busTestConfig(t *testing.T, nodeQueues ...string) (AMQPConfig, *[]string) {
	t.Helper()
	admin := busAdmin(t)
	cfg := AMQPConfig{
		URL:            busTestURL(),
		Prefix:         "imgate-test-" + busRandHex(6) + ".",
		ReconnectMin:   20 * time.Millisecond,
		ReconnectMax:   200 * time.Millisecond,
		PublishTimeout: 15 * time.Second,
		CloseTimeout:   2 * time.Second,
		Heartbeat:      2 * time.Second,
	}.WithDefaults()
	queues := append([]string{}, nodeQueues...)
	t.Cleanup(func() {
		ch, err := admin.Channel()
		if err != nil {
			return
		}
		defer ch.Close()
		for _, q := range append([]string{cfg.SaveQueue}, queues...) {
			_, _ = ch.QueueDelete(q, false, false, false)
		}
		_ = ch.ExchangeDelete(cfg.Exchange, false, false)
		_ = ch.ExchangeDelete(cfg.SaveExchange, false, false)
	})
	return cfg, &queues
}

// busWaitFor polls cond until it holds or d passes.
func busWaitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func busRecord(id int64, from, to, node string) message.Record {
	return message.Record{
		Msg: codec.ChatMsg{
			SenderID:    from,
			ReceiverID:  to,
			Msg:         "hello",
			MsgType:     codec.Words,
			MsgID:       id,
			ClientMsgID: "c-" + busRandHex(2),
			ChatTime:    time.Now().UTC().Truncate(time.Millisecond),
			Extra:       []byte(`"w": 640, "h":480`),
		},
		SenderConn: 1001,
		Node:       node,
	}
}

// busStore is an idempotent fake of saver.Store.Save that assigns per-user seqs.
type busStore struct {
	mu    sync.Mutex
	seen  map[int64]message.Saved
	seqs  map[string]int64
	calls int
	fail  int // fail the next fail calls
}

func newBusStore() *busStore {
	return &busStore{seen: map[int64]message.Saved{}, seqs: map[string]int64{}}
}

func (s *busStore) handle(_ context.Context, recs []message.Record) ([]message.Saved, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail > 0 {
		s.fail--
		return nil, errors.New("store down")
	}
	out := make([]message.Saved, 0, len(recs))
	for _, r := range recs {
		if old, ok := s.seen[r.Msg.MsgID]; ok {
			// The same msgId again is a redelivery: pushed again, not a duplicate.
			old.SenderConn, old.Node = r.SenderConn, r.Node
			out = append(out, old)
			continue
		}
		s.seqs[r.Msg.ReceiverID]++
		rs := s.seqs[r.Msg.ReceiverID]
		ss := rs
		if r.Msg.SenderID != r.Msg.ReceiverID {
			s.seqs[r.Msg.SenderID]++
			ss = s.seqs[r.Msg.SenderID]
		}
		sv := message.Saved{Record: r, ReceiverSeq: rs, SenderSeq: ss}
		s.seen[r.Msg.MsgID] = sv
		out = append(out, sv)
	}
	return out, nil
}

func (s *busStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// busSink collects what a node's deliver receives.
type busSink struct {
	mu      sync.Mutex
	ids     map[int64]int // msgId → times delivered
	batches []int
}

func newBusSink() *busSink { return &busSink{ids: map[int64]int{}} }

func (k *busSink) deliver(batch []message.Saved) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.batches = append(k.batches, len(batch))
	for _, s := range batch {
		k.ids[s.Msg.MsgID]++
	}
}

func (k *busSink) distinct() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.ids)
}

// busProxy is a TCP proxy to RabbitMQ that the test can cut (close every
// connection and refuse new ones) and heal.
type busProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newBusProxy(t *testing.T) (*busProxy, string) {
	t.Helper()
	u, err := amqp.ParseURI(busTestURL())
	if err != nil {
		t.Fatal(err)
	}
	p, port := newTCPProxy(t, net.JoinHostPort(u.Host, strconv.Itoa(u.Port)))
	u.Host, u.Port = "127.0.0.1", port
	return p, u.String()
}

// newTCPProxy proxies a local port to target; it returns the port.
func newTCPProxy(t *testing.T, target string) (*busProxy, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &busProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p, ln.Addr().(*net.TCPAddr).Port
}

func (p *busProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *busProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// Cut closes every proxied connection and refuses new ones until Heal.
func (p *busProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// Heal accepts connections again.
func (p *busProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func presenceTestAddr() string {
	if addr := os.Getenv("IMGATE_TEST_REDIS"); addr != "" {
		return addr
	}
	return "127.0.0.1:6379"
}

func presenceTestRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	addr := presenceTestAddr()
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		t.Fatalf("Redis at %s does not answer (%v): run scripts/services.sh up", addr, err)
	}
	prefix := "imgate-test-" + busRandHex(6) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, prefix+"*", 500).Result()
			if err != nil {
				break
			}
			if len(keys) > 0 {
				c.Del(ctx, keys...)
			}
			if next == 0 {
				break
			}
			cursor = next
		}
		_ = c.Close()
	})
	return c, prefix
}
