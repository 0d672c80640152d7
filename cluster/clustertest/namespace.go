package clustertest

import (
	"context"
	"errors"
	"path"
	"strconv"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
)

// zkQuiet silences the ZooKeeper client's log.
type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

// ZKConn opens a plain ZooKeeper session for inspecting and cleaning the tree, closed at
// cleanup; it fails the test when ZooKeeper does not answer.
func ZKConn(t testing.TB) *zk.Conn {
	t.Helper()
	conn, _ := zkConnect(t)
	return conn
}

func zkConnect(t testing.TB) (*zk.Conn, <-chan zk.Event) {
	t.Helper()
	conn, events, err := zk.Connect([]string{ZKAddr()}, 4*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatalf("zookeeper %s: %v (run scripts/services.sh up)", ZKAddr(), err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				t.Cleanup(conn.Close)
				return conn, events
			}
		case <-deadline:
			conn.Close()
			t.Fatalf("zookeeper %s does not answer (run scripts/services.sh up)", ZKAddr())
		}
	}
}

// Redis returns a client of the tests' Redis and a fresh key prefix "imgate-test-<hex>:";
// every key under the prefix is deleted, and the client closed, at cleanup.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: RedisAddr(), DialTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		t.Fatalf("Redis at %s does not answer (%v): run scripts/services.sh up", RedisAddr(), err)
	}
	prefix := "imgate-test-" + RandHex(6) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		deleteKeys(ctx, t, c, prefix)
		_ = c.Close()
	})
	return c, prefix
}

// deleteKeys deletes every key that starts with prefix.
func deleteKeys(ctx context.Context, t testing.TB, c *redis.Client, prefix string) {
	var keys []string
	it := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Logf("cleanup: redis scan %s*: %v", prefix, err)
	}
	if len(keys) > 0 {
		if err := c.Del(ctx, keys...).Err(); err != nil {
			t.Logf("cleanup: redis del: %v", err)
		}
	}
}

// Services are the test's own clients of the four services, for inspection and cleanup.
type Services struct {
	ZK    *zk.Conn
	Redis *redis.Client
	PG    *pgx.Conn
	AMQP  *amqp.Connection
}

// ConnectServices connects to the four services, failing the test with instructions when one
// does not answer; the clients are closed at cleanup.
func ConnectServices(t testing.TB) *Services {
	t.Helper()
	const hint = "(run scripts/services.sh up)"
	s := &Services{}
	var events <-chan zk.Event
	s.ZK, events = zkConnect(t)
	go func() { // keep draining session events
		for range events {
		}
	}()
	var err error
	s.Redis = redis.NewClient(&redis.Options{Addr: RedisAddr(), DialTimeout: 3 * time.Second})
	t.Cleanup(func() { _ = s.Redis.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Redis.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis %s: %v %s", RedisAddr(), err, hint)
	}
	if s.PG, err = pgx.Connect(ctx, pgDSN()); err != nil {
		t.Fatalf("postgres %s: %v %s", pgDSN(), err, hint)
	}
	t.Cleanup(func() { _ = s.PG.Close(context.Background()) })
	if s.AMQP, err = amqp.DialConfig(AMQPURL(), amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)}); err != nil {
		t.Fatalf("rabbitmq %s: %v %s", AMQPURL(), err, hint)
	}
	t.Cleanup(func() { _ = s.AMQP.Close() })
	return s
}

// Clean removes everything namespace ns owns in the four services. nodePorts name the
// node queues. Failures are logged: they leave garbage, not wrong results.
func (s *Services) Clean(t testing.TB, ns string, nodePorts []int) {
	DeleteZKTree(t, s.ZK, "/"+ns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	deleteKeys(ctx, t, s.Redis, ns+":")
	queues := []string{ns + ".msg.save"}
	for _, p := range nodePorts {
		queues = append(queues, ns+".node.127.0.0.1_"+strconv.Itoa(p))
	}
	if s.AMQP.IsClosed() { // the broker went away during the test
		if c, err := amqp.DialConfig(AMQPURL(), amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)}); err == nil {
			s.AMQP = c
			defer func() { _ = c.Close() }()
		}
	}
	if ch, err := s.AMQP.Channel(); err != nil {
		t.Logf("cleanup: rabbitmq channel: %v", err)
	} else {
		for _, q := range queues {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				t.Logf("cleanup: rabbitmq queue %s: %v", q, err)
				if ch, err = s.AMQP.Channel(); err != nil {
					break
				}
			}
		}
		for _, x := range []string{ns + ".fanout", ns + ".msg"} {
			if ch == nil {
				break
			}
			if err := ch.ExchangeDelete(x, false, false); err != nil {
				t.Logf("cleanup: rabbitmq exchange %s: %v", x, err)
				if ch, err = s.AMQP.Channel(); err != nil {
					break
				}
			}
		}
		if ch != nil {
			_ = ch.Close()
		}
	}
	if _, err := s.PG.Exec(ctx, "DROP SCHEMA IF EXISTS "+ns+" CASCADE"); err != nil {
		t.Logf("cleanup: drop schema %s: %v", ns, err)
	}
}

// DeleteZKTree removes p and everything under it; failures are logged.
func DeleteZKTree(t testing.TB, conn *zk.Conn, p string) {
	children, _, err := conn.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return
	}
	if err != nil {
		t.Logf("cleanup: zookeeper children %s: %v", p, err)
		return
	}
	for _, c := range children {
		DeleteZKTree(t, conn, path.Join(p, c))
	}
	if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		t.Logf("cleanup: zookeeper delete %s: %v", p, err)
	}
}
