package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"os"
	"path"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// Helpers of the ZooKeeper tests; names start with zk to stay clear of the package's other tests.

// zkTestAddr is the ZooKeeper the tests use.
func zkTestAddr() string {
	if a := os.Getenv("IMGATE_TEST_ZK"); a != "" {
		return a
	}
	return "127.0.0.1:2181"
}

// zkRandHex returns n random bytes in hex.
func zkRandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// zkTestConn opens a plain session for inspecting the tree; it fails the test if ZooKeeper does
// not answer.
func zkTestConn(t *testing.T) *zk.Conn {
	t.Helper()
	conn, events, err := zk.Connect([]string{zkTestAddr()}, 4*time.Second, zk.WithLogInfo(false),
		zk.WithLogger(zkSlogger{slog.New(slog.DiscardHandler)}))
	if err != nil {
		t.Fatalf("zookeeper %s: %v (run scripts/services.sh up)", zkTestAddr(), err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				t.Cleanup(conn.Close)
				return conn
			}
		case <-deadline:
			conn.Close()
			t.Fatalf("zookeeper %s does not answer (run scripts/services.sh up)", zkTestAddr())
		}
	}
}

// zkTestConfig returns a config in a fresh namespace imgate-test-<hex>, removed at cleanup.
func zkTestConfig(t *testing.T) (ZKConfig, *zk.Conn) {
	t.Helper()
	conn := zkTestConn(t)
	ns := "imgate-test-" + zkRandHex(6)
	t.Cleanup(func() { zkDeleteTree(t, conn, "/"+ns) })
	return ZKConfig{
		Servers:        []string{zkTestAddr()},
		Namespace:      ns,
		SessionTimeout: 2 * time.Second,
		FlushInterval:  50 * time.Millisecond,
		ConnectTimeout: 5 * time.Second,
	}, conn
}

// zkDeleteTree removes p and everything under it.
func zkDeleteTree(t *testing.T, conn *zk.Conn, p string) {
	children, _, err := conn.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return
	}
	if err != nil {
		t.Errorf("cleanup: children %s: %v", p, err)
		return
	}
	for _, c := range children {
		zkDeleteTree(t, conn, path.Join(p, c))
	}
	if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("cleanup: delete %s: %v", p, err)
	}
}

// zkWaitFor polls cond every 10ms until it holds or timeout passes.
func zkWaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// zkCutter is a Dialer that can cut its client off from ZooKeeper: Cut closes every connection
// and refuses new ones until Heal. Cut for longer than the session timeout, the server expires
// the session; after Heal the client learns of the expiry and opens a new session.
type zkCutter struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

// Dial implements ZKConfig.Dialer.
func (c *zkCutter) Dial(network, address string, timeout time.Duration) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return nil, errors.New("zkCutter: cut")
	}
	conn, err := net.DialTimeout(network, address, timeout)
	if err == nil {
		c.conns = append(c.conns, conn)
	}
	return conn, err
}

// Cut closes the client's connections and refuses new ones.
func (c *zkCutter) Cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
	for _, conn := range c.conns {
		_ = conn.Close()
	}
	c.conns = nil
}

// Heal lets the client connect again.
func (c *zkCutter) Heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = false
}
