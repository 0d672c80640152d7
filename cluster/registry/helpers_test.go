package registry

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"imgate/cluster/clustertest"
)

// Helpers of the ZooKeeper tests; names start with zk to stay clear of the package's other tests.

func zkTestAddr() string { return clustertest.ZKAddr() }

// zkTestConfig returns a config in a fresh namespace imgate-test-<hex>, removed at cleanup.
func zkTestConfig(t *testing.T) (Config, *zk.Conn) {
	t.Helper()
	conn := clustertest.ZKConn(t)
	ns := "imgate-test-" + clustertest.RandHex(6)
	t.Cleanup(func() { clustertest.DeleteZKTree(t, conn, "/"+ns) })
	return Config{
		Servers:        []string{zkTestAddr()},
		Namespace:      ns,
		SessionTimeout: 2 * time.Second,
		FlushInterval:  50 * time.Millisecond,
		ConnectTimeout: 5 * time.Second,
	}, conn
}

// zkWaitFor polls cond until it holds or timeout passes.
func zkWaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	clustertest.WaitFor(t, timeout, what, cond)
}

// zkCutter is a Dialer that can cut its client off from ZooKeeper: Cut closes every connection
// and refuses new ones until Heal. Cut for longer than the session timeout, the server expires
// the session; after Heal the client learns of the expiry and opens a new session.
type zkCutter struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

// Dial implements Config.Dialer.
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
