package clustertest

import (
	"crypto/rand"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Cluster starts roles of the binary in one namespace (itest_<hex>) and removes them and
// everything they made at cleanup.
type Cluster struct {
	NS      string    // the namespace: ZooKeeper root, Redis prefix, RabbitMQ prefix, PostgreSQL schema
	Svc     *Services // the test's own clients of the services
	AMQPURL string    // what the roles dial; a test may point it at a proxy before starting them
	// PortBase is the first port a node tries with --port auto.
	PortBase int
	// Delivery is the saver's --delivery (fanout or routed); empty: the saver's default.
	Delivery string
	// NodeExtra and DispatchExtra are appended to the arguments of every node and of the
	// dispatcher (e.g. --api-key-file, --drain-window).
	NodeExtra, DispatchExtra []string

	t   testing.TB
	bin string

	mu    sync.Mutex
	procs []*Proc
	disp  *Proc
}

// NewCluster returns a Cluster running the binary bin in a new namespace.
func NewCluster(t testing.TB, bin string) *Cluster {
	t.Helper()
	c := &Cluster{
		t: t, bin: bin, NS: "itest_" + RandHex(6), Svc: ConnectServices(t), AMQPURL: AMQPURL(),
		PortBase: 20000 + 10*randUint(900),
	}
	t.Cleanup(func() {
		c.stopAll()
		c.Svc.Clean(t, c.NS, c.nodePorts())
	})
	return c
}

func randUint(n int) int {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return int(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3])) % n
}

// stopAll ends every process, checks their logs for data races and, if the test failed,
// shows the end of every log.
func (c *Cluster) stopAll() {
	c.mu.Lock()
	procs := slices.Clone(c.procs)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.Stop(3 * time.Second) })
	}
	wg.Wait()
	for _, p := range procs {
		l := p.Log()
		if i := slices.IndexFunc(l, func(s string) bool { return strings.Contains(s, "WARNING: DATA RACE") }); i >= 0 {
			c.t.Errorf("%s: data race:\n  %s", p.Name, strings.Join(l[i:min(len(l), i+60)], "\n  "))
		}
	}
	if c.t.Failed() {
		for _, p := range procs {
			c.t.Logf("---- %s (exit %v), last lines:\n%s", p.Name, p.Err, p.Tail(25))
		}
	}
}

// nodePorts are the ports nodes allocated (from their logs), for the queue names.
func (c *Cluster) nodePorts() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ports []int
	for _, p := range c.procs {
		for _, l := range p.Log() {
			if m := portRE.FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[1])
				ports = append(ports, n)
			}
		}
	}
	return ports
}

// Add makes c stop p at cleanup.
func (c *Cluster) Add(p *Proc) *Proc {
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p
}

// SaverArgs are the arguments of a saver in c.
func (c *Cluster) SaverArgs() []string {
	args := []string{"saver", "--namespace", c.NS, "--zk", ZKAddr(), "--amqp", c.AMQPURL, "--redis", RedisAddr(),
		"--pg", pgDSN(), "--http-addr", "127.0.0.1:0", "--zk-session-timeout", "2s", "--connect-timeout", "5s"}
	if c.Delivery != "" {
		args = append(args, "--delivery", c.Delivery)
	}
	return args
}

// DispatchArgs are the arguments of a dispatcher in c.
func (c *Cluster) DispatchArgs() []string {
	args := []string{"dispatch", "--namespace", c.NS, "--zk", ZKAddr(), "--amqp", c.AMQPURL, "--redis", RedisAddr(),
		"--pg", pgDSN(), "--http-addr", "127.0.0.1:0", "--zk-session-timeout", "2s", "--connect-timeout", "5s"}
	return append(args, c.DispatchExtra...)
}

// NodeArgs are the arguments of node id (its snowflake worker id) in c.
func (c *Cluster) NodeArgs(id int) []string {
	args := []string{"node", "--namespace", c.NS, "--zk", ZKAddr(), "--amqp", c.AMQPURL,
		"--redis", RedisAddr(), "--pg", pgDSN(), "--ws-addr", "127.0.0.1:0", "--port", "auto",
		"--port-base", strconv.Itoa(c.PortBase), "--http-addr", "127.0.0.1:0", "--zk-session-timeout", "2s",
		"--flush-interval", "200ms", "--connect-timeout", "5s", "--node-id", strconv.Itoa(id)}
	return append(args, c.NodeExtra...)
}

// StartNode starts node id (its snowflake worker id; distinct from every other node's)
// with extra arguments after NodeArgs, and waits for its ready line (not for the
// dispatcher to list it: see WaitListed).
func (c *Cluster) StartNode(id int, extra ...string) *Proc {
	c.t.Helper()
	p := c.Add(Start(c.t, c.bin, "node"+strconv.Itoa(id), false, append(c.NodeArgs(id), extra...)...))
	return c.awaitReady(p)
}

// StartSaver starts a saver and waits until it is ready.
func (c *Cluster) StartSaver() *Proc {
	c.t.Helper()
	return c.Add(Start(c.t, c.bin, "saver", true, c.SaverArgs()...))
}

// StartDispatch starts the dispatcher that the API methods ask, and waits until it is ready.
func (c *Cluster) StartDispatch() *Proc {
	c.t.Helper()
	p := c.Add(Start(c.t, c.bin, "dispatch", true, c.DispatchArgs()...))
	c.disp = p
	return p
}

// StartNodes starts n nodes (ids 1..n) concurrently and waits until the dispatcher lists
// exactly them.
func (c *Cluster) StartNodes(n int) []*Proc {
	c.t.Helper()
	nodes := make([]*Proc, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := Start(c.t, c.bin, "node"+strconv.Itoa(i+1), false, c.NodeArgs(i+1)...)
			c.Add(p)
			nodes[i] = p
		})
	}
	wg.Wait()
	for i, p := range nodes {
		nodes[i] = c.awaitReady(p)
	}
	ids := make([]string, n)
	for i, p := range nodes {
		ids[i] = p.ID
	}
	c.WaitListed(ids...)
	return nodes
}

// awaitReady waits for the ready line of a process started without waiting.
func (c *Cluster) awaitReady(p *Proc) *Proc {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, l := range p.Log() {
			if m := readyRE.FindStringSubmatch(l); m != nil {
				kv := map[string]string{}
				for _, f := range kvRE.FindAllStringSubmatch(m[1], -1) {
					kv[f[1]] = f[2]
				}
				p.setReady(kv)
				return p
			}
		}
		if !p.alive() {
			c.t.Fatalf("%s exited before ready (%v):\n%s", p.Name, p.Err, p.Tail(30))
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not ready within 30s:\n%s", p.Name, p.Tail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
