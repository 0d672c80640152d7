package main

// Helpers of the cluster process tests (cluster_*_test.go): the services and a namespace
// per test, the roles as processes of the race-built binary (binPath, see TestMain), the
// dispatcher's API, a cuttable TCP proxy, and the audit client set that checks that nothing
// acknowledged is lost. Names start with cl to stay clear of the package's other tests.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
)

// ---- services and namespaces ----

func clEnv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func clZKAddr() string    { return clEnv("IMGATE_TEST_ZK", "127.0.0.1:2181") }
func clAMQPURL() string   { return clEnv("IMGATE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/") }
func clRedisAddr() string { return clEnv("IMGATE_TEST_REDIS", "127.0.0.1:6379") }
func clPGDSN() string {
	return clEnv("IMGATE_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
}

func clRandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type clZKQuiet struct{}

func (clZKQuiet) Printf(string, ...any) {}

// clServices are the test's own clients of the four services, for inspection and cleanup.
type clServices struct {
	zk   *zk.Conn
	rdb  *redis.Client
	pg   *pgx.Conn
	amqp *amqp.Connection
}

func clConnectServices(t *testing.T) *clServices {
	t.Helper()
	const hint = "(run scripts/services.sh up)"
	s := &clServices{}
	conn, events, err := zk.Connect([]string{clZKAddr()}, 4*time.Second, zk.WithLogInfo(false), zk.WithLogger(clZKQuiet{}))
	if err != nil {
		t.Fatalf("zookeeper %s: %v %s", clZKAddr(), err, hint)
	}
	t.Cleanup(conn.Close)
	deadline := time.After(5 * time.Second)
	for s.zk == nil {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				s.zk = conn
			}
		case <-deadline:
			t.Fatalf("zookeeper %s does not answer %s", clZKAddr(), hint)
		}
	}
	go func() { // keep draining session events
		for range events {
		}
	}()
	s.rdb = redis.NewClient(&redis.Options{Addr: clRedisAddr(), DialTimeout: 3 * time.Second})
	t.Cleanup(func() { _ = s.rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis %s: %v %s", clRedisAddr(), err, hint)
	}
	if s.pg, err = pgx.Connect(ctx, clPGDSN()); err != nil {
		t.Fatalf("postgres %s: %v %s", clPGDSN(), err, hint)
	}
	t.Cleanup(func() { _ = s.pg.Close(context.Background()) })
	if s.amqp, err = amqp.DialConfig(clAMQPURL(), amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)}); err != nil {
		t.Fatalf("rabbitmq %s: %v %s", clAMQPURL(), err, hint)
	}
	t.Cleanup(func() { _ = s.amqp.Close() })
	return s
}

// clean removes everything namespace ns owns in the four services. nodePorts name the
// node queues. Failures are logged: they leave garbage, not wrong results.
func (s *clServices) clean(t *testing.T, ns string, nodePorts []int) {
	clZKDeleteTree(t, s.zk, "/"+ns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	it := s.rdb.Scan(ctx, 0, ns+":*", 500).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Logf("cleanup: redis scan %s:*: %v", ns, err)
	}
	if len(keys) > 0 {
		if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
			t.Logf("cleanup: redis del: %v", err)
		}
	}
	queues := []string{ns + ".msg.save"}
	for _, p := range nodePorts {
		queues = append(queues, ns+".node.127.0.0.1_"+strconv.Itoa(p))
	}
	if s.amqp.IsClosed() { // the broker went away during the test
		if c, err := amqp.DialConfig(clAMQPURL(), amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)}); err == nil {
			s.amqp = c
			defer func() { _ = c.Close() }()
		}
	}
	if ch, err := s.amqp.Channel(); err != nil {
		t.Logf("cleanup: rabbitmq channel: %v", err)
	} else {
		for _, q := range queues {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				t.Logf("cleanup: rabbitmq queue %s: %v", q, err)
				if ch, err = s.amqp.Channel(); err != nil {
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
				if ch, err = s.amqp.Channel(); err != nil {
					break
				}
			}
		}
		if ch != nil {
			_ = ch.Close()
		}
	}
	if _, err := s.pg.Exec(ctx, "DROP SCHEMA IF EXISTS "+ns+" CASCADE"); err != nil {
		t.Logf("cleanup: drop schema %s: %v", ns, err)
	}
}

func clZKDeleteTree(t *testing.T, conn *zk.Conn, p string) {
	children, _, err := conn.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return
	}
	if err != nil {
		t.Logf("cleanup: zookeeper children %s: %v", p, err)
		return
	}
	for _, c := range children {
		clZKDeleteTree(t, conn, path.Join(p, c))
	}
	if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		t.Logf("cleanup: zookeeper delete %s: %v", p, err)
	}
}

// ---- processes ----

// clProc is one running role of the binary.
type clProc struct {
	name   string
	cmd    *exec.Cmd
	start  time.Time
	exited chan struct{}
	err    error // valid after exited

	// From the ready line (whichever the role prints).
	ws, id, health, http string
	port                 int // the node's WebSocket port

	mu    sync.Mutex
	lines []string
}

var (
	clReadyRE = regexp.MustCompile(`imgate (?:node|saver|dispatch) ready"?(.*)$`)
	clKVRE    = regexp.MustCompile(`(\w+)=(\S+)`)
	clPortRE  = regexp.MustCompile(`port allocated"? .*\bport=(\d+)`)
)

// clStart runs the binary with args; with ready it waits (≤ 30 s) for the role's ready line.
func clStart(t *testing.T, name string, ready bool, args ...string) *clProc {
	t.Helper()
	p := &clProc{name: name, cmd: exec.Command(binPath, args...), exited: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyc := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
			if m := clReadyRE.FindStringSubmatch(line); m != nil {
				kv := map[string]string{}
				for _, f := range clKVRE.FindAllStringSubmatch(m[1], -1) {
					kv[f[1]] = f[2]
				}
				select {
				case readyc <- kv:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	if !ready {
		return p
	}
	select {
	case kv := <-readyc:
		p.ws, p.id, p.health, p.http = kv["ws"], kv["id"], kv["health"], kv["http"]
		if p.ws != "" {
			if _, port, err := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(p.ws, "ws://"), "/ws")); err == nil {
				p.port, _ = strconv.Atoi(port)
			}
		}
	case <-p.exited:
		t.Fatalf("%s exited before ready (%v):\n%s", name, p.err, p.tail(30))
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not ready within 30s:\n%s", name, p.tail(30))
	}
	return p
}

func (p *clProc) signal(s syscall.Signal) { _ = p.cmd.Process.Signal(s) }

// kill9 sends SIGKILL and waits for the exit.
func (p *clProc) kill9(t *testing.T) {
	t.Helper()
	p.signal(syscall.SIGCONT)
	p.signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not die after SIGKILL", p.name)
	}
}

func (p *clProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop ends the process: SIGCONT, SIGTERM, SIGKILL after grace.
func (p *clProc) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	p.signal(syscall.SIGCONT)
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.signal(syscall.SIGKILL)
		<-p.exited
	}
}

func (p *clProc) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lines)
}

func (p *clProc) tail(n int) string {
	l := p.log()
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return "  " + strings.Join(l, "\n  ")
}

// logHas reports whether a log line matches re.
// ---- a cluster in a namespace ----

// clCluster starts roles in one namespace (itest_<hex>) and removes them and everything
// they made at cleanup.
type clCluster struct {
	t        *testing.T
	ns       string
	svc      *clServices
	amqpURL  string // what the roles dial; a test may point it at a proxy before starting them
	portBase int

	mu    sync.Mutex
	procs []*clProc
	disp  *clProc
}

func newClCluster(t *testing.T) *clCluster {
	t.Helper()
	c := &clCluster{
		t: t, ns: "itest_" + clRandHex(6), svc: clConnectServices(t), amqpURL: clAMQPURL(),
		portBase: 20000 + 10*int(clRandUint(900)),
	}
	t.Cleanup(func() {
		c.stopAll()
		c.svc.clean(t, c.ns, c.nodePorts())
	})
	return c
}

func clRandUint(n int) int {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return int(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3])) % n
}

// stopAll ends every process, checks their logs for data races and, if the test failed,
// shows the end of every log.
func (c *clCluster) stopAll() {
	c.mu.Lock()
	procs := slices.Clone(c.procs)
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.stop(3 * time.Second) })
	}
	wg.Wait()
	for _, p := range procs {
		l := p.log()
		if i := slices.IndexFunc(l, func(s string) bool { return strings.Contains(s, "WARNING: DATA RACE") }); i >= 0 {
			c.t.Errorf("%s: data race:\n  %s", p.name, strings.Join(l[i:min(len(l), i+60)], "\n  "))
		}
	}
	if c.t.Failed() {
		for _, p := range procs {
			c.t.Logf("---- %s (exit %v), last lines:\n%s", p.name, p.err, p.tail(25))
		}
	}
}

// nodePorts are the ports nodes allocated (from their logs), for the queue names.
func (c *clCluster) nodePorts() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ports []int
	for _, p := range c.procs {
		for _, l := range p.log() {
			if m := clPortRE.FindStringSubmatch(l); m != nil {
				n, _ := strconv.Atoi(m[1])
				ports = append(ports, n)
			}
		}
	}
	return ports
}

func (c *clCluster) add(p *clProc) *clProc {
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p
}

func (c *clCluster) saverArgs() []string {
	return []string{"saver", "--namespace", c.ns, "--amqp", c.amqpURL, "--pg", clPGDSN(),
		"--http-addr", "127.0.0.1:0", "--connect-timeout", "5s"}
}

func (c *clCluster) dispatchArgs() []string {
	return []string{"dispatch", "--namespace", c.ns, "--zk", clZKAddr(), "--redis", clRedisAddr(),
		"--pg", clPGDSN(), "--http-addr", "127.0.0.1:0", "--zk-session-timeout", "2s", "--connect-timeout", "5s"}
}

func (c *clCluster) nodeArgs(id int) []string {
	return []string{"node", "--namespace", c.ns, "--zk", clZKAddr(), "--amqp", c.amqpURL,
		"--redis", clRedisAddr(), "--pg", clPGDSN(), "--ws-addr", "127.0.0.1:0", "--port", "auto",
		"--port-base", strconv.Itoa(c.portBase), "--http-addr", "127.0.0.1:0", "--zk-session-timeout", "2s",
		"--flush-interval", "200ms", "--connect-timeout", "5s", "--node-id", strconv.Itoa(id)}
}

func (c *clCluster) startSaver() *clProc {
	c.t.Helper()
	return c.add(clStart(c.t, "saver", true, c.saverArgs()...))
}

func (c *clCluster) startDispatch() *clProc {
	c.t.Helper()
	p := c.add(clStart(c.t, "dispatch", true, c.dispatchArgs()...))
	c.disp = p
	return p
}

// startNodes starts n nodes (ids 1..n) concurrently and waits until the dispatcher lists
// exactly them.
func (c *clCluster) startNodes(n int) []*clProc {
	c.t.Helper()
	nodes := make([]*clProc, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := clStart(c.t, "node"+strconv.Itoa(i+1), false, c.nodeArgs(i+1)...)
			c.add(p)
			nodes[i] = p
		})
	}
	wg.Wait()
	for i, p := range nodes {
		nodes[i] = c.awaitReady(p)
	}
	ids := make([]string, n)
	for i, p := range nodes {
		ids[i] = p.id
	}
	c.waitListed(ids...)
	return nodes
}

// awaitReady waits for the ready line of a process started without waiting.
func (c *clCluster) awaitReady(p *clProc) *clProc {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, l := range p.log() {
			if m := clReadyRE.FindStringSubmatch(l); m != nil {
				kv := map[string]string{}
				for _, f := range clKVRE.FindAllStringSubmatch(m[1], -1) {
					kv[f[1]] = f[2]
				}
				p.ws, p.id, p.health, p.http = kv["ws"], kv["id"], kv["health"], kv["http"]
				if _, port, err := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(p.ws, "ws://"), "/ws")); err == nil {
					p.port, _ = strconv.Atoi(port)
				}
				return p
			}
		}
		if !p.alive() {
			c.t.Fatalf("%s exited before ready (%v):\n%s", p.name, p.err, p.tail(30))
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not ready within 30s:\n%s", p.name, p.tail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- the dispatcher's API ----

type clNode struct {
	IP           string `json:"ip"`
	Port         int    `json:"port"`
	OnlineCounts int64  `json:"onlineCounts"`
	NodeID       string `json:"nodeId"`
	WSURL        string `json:"wsUrl"`
	Draining     bool   `json:"draining"`
}

var clHTTP = &http.Client{Timeout: 3 * time.Second}

// clGetJSON GETs url and decodes the body into v; it returns the status.
func clGetJSON(url string, v any) (int, error) {
	resp, err := clHTTP.Get(url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return resp.StatusCode, nil
}

func (c *clCluster) nodes() ([]clNode, error) {
	var r struct {
		Data struct {
			Nodes []clNode `json:"nodes"`
		} `json:"data"`
	}
	st, err := clGetJSON(c.disp.http+"/api/v1/nodes", &r)
	if err == nil && st != http.StatusOK {
		err = fmt.Errorf("GET /api/v1/nodes: status %d", st)
	}
	return r.Data.Nodes, err
}

func (c *clCluster) pick(user string) (clNode, error) {
	var r struct {
		Data *clNode `json:"data"`
	}
	st, err := clGetJSON(c.disp.http+"/api/v1/nodes/pick?userId="+user, &r)
	if err == nil && (st != http.StatusOK || r.Data == nil) {
		err = fmt.Errorf("pick: status %d", st)
	}
	if err != nil {
		return clNode{}, err
	}
	return *r.Data, nil
}

// presence answers the user's devices per node ID.
func (c *clCluster) presence(user string) (map[string]int, error) {
	var r struct {
		Data struct {
			Nodes map[string]int `json:"nodes"`
		} `json:"data"`
	}
	st, err := clGetJSON(c.disp.http+"/api/v1/presence?userId="+user, &r)
	if err == nil && st != http.StatusOK {
		err = fmt.Errorf("presence: status %d", st)
	}
	return r.Data.Nodes, err
}

// listedIDs answers the node IDs the dispatcher lists, sorted.
func (c *clCluster) listedIDs() []string {
	ns, err := c.nodes()
	if err != nil {
		return nil
	}
	ids := make([]string, 0, len(ns))
	for _, n := range ns {
		ids = append(ids, n.NodeID)
	}
	slices.Sort(ids)
	return ids
}

// waitListed waits until the dispatcher lists exactly ids.
func (c *clCluster) waitListed(ids ...string) {
	c.t.Helper()
	want := slices.Sorted(slices.Values(ids))
	clWaitState(c.t, 15*time.Second, "the dispatcher lists "+strings.Join(want, ","), func() (bool, string) {
		got := c.listedIDs()
		return slices.Equal(got, want), fmt.Sprint("listed: ", got)
	})
}

// clHealth answers a /healthz status and its checks.
func clHealth(base string) (int, map[string]string) {
	var r struct {
		Checks map[string]string `json:"checks"`
	}
	st, err := clGetJSON(base+"/healthz", &r)
	if err != nil {
		return 0, map[string]string{"get": err.Error()}
	}
	return st, r.Checks
}

// serverList answers the znodes under /<ns>/server-list: name → data.
func (c *clCluster) serverList() map[string]map[string]any {
	dir := "/" + c.ns + "/server-list"
	children, _, err := c.svc.zk.Children(dir)
	out := map[string]map[string]any{}
	if err != nil {
		return out
	}
	for _, ch := range children {
		b, _, err := c.svc.zk.Get(dir + "/" + ch)
		if err != nil {
			continue
		}
		var d map[string]any
		_ = json.Unmarshal(b, &d)
		out[ch] = d
	}
	return out
}

// portClaims answers the Redis hash <ns>:ports.
func (c *clCluster) portClaims() map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	m, err := c.svc.rdb.HGetAll(ctx, c.ns+":ports").Result()
	if err != nil {
		c.t.Logf("HGETALL %s:ports: %v", c.ns, err)
	}
	return m
}

// ---- waiting ----

// clWaitFor polls cond every 25 ms until it holds, failing the test after d.
func clWaitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return clWaitState(t, d, what, func() (bool, string) { return cond(), "" })
}

// clWaitState is clWaitFor with a description of the state for the failure message. It
// returns how long the wait took.
func clWaitState(t *testing.T, d time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	for {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s; %s", d, what, state)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// ---- a cuttable TCP proxy ----

// clProxy forwards a local port to target; Cut closes every proxied connection and refuses
// new ones until Heal.
type clProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newClProxy(t *testing.T, target string) *clProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &clProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

func (p *clProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *clProxy) accept() {
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

func (p *clProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

func (p *clProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *clProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// ---- the audit client set ----

// clAudit is a set of devices (WebSocket clients) that records, per sender, the msgId each
// clientMsgId was acknowledged with and, per device, every delivered msgId with its seq. A
// message not acknowledged is sent again with the same clientMsgId (after ERROR unavailable,
// after a reconnect, or after resendAfter without an answer), as the protocol asks. A device
// whose connection fails reconnects (to pick's answer) with its cursor, the highest seq it saw.
type clAudit struct {
	t           *testing.T
	pick        func(user string) (string, error) // where to reconnect; nil: the same URL
	resendAfter time.Duration

	mu          sync.Mutex
	devs        []*clDevice
	msgs        map[string]*clMsg // sender + "\x00" + clientMsgId
	pending     map[*clMsg]struct{}
	resends     int
	unavailable int
	rateLimited int
	failures    []string // protocol violations
	closed      bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// clMsg is one content message and what became of it.
type clMsg struct {
	from               *clDevice
	sender, receiver   string
	cid                string
	first              time.Time // first send, also the latency origin (chatMsg.ts)
	lastSent           time.Time
	sends              int
	retryAt            time.Time // after ERROR unavailable
	retryNow           bool      // after a reconnect
	msgID              string    // from the ACK
	acked              time.Time
	unavailableAnswers int
}

// clDevice is one connection of a user, reconnected as needed.
type clDevice struct {
	a          *clAudit
	user, name string
	wmu        sync.Mutex // serializes writes

	// Guarded by a.mu.
	conn       *websocket.Conn
	gen        int
	url        string
	ready      bool // the current connection's CONNECT_INIT was acknowledged
	cursor     int64
	seen       map[string]int64 // msgId → seq
	dups       int
	lateOrder  []string        // new messages after the init ACK with a seq at or below the cursor
	receipts   map[string]int  // SIGNED msgId → count
	lat        []time.Duration // first delivery minus chatMsg.ts
	replays    []clReplay      // per connection: what came before its init ACK
	reconnects int
	sent       int
	closed     bool
}

// clReplay is what one connection got before its CONNECT_INIT was acknowledged.
type clReplay struct {
	cursor int64   // sent in CONNECT_INIT
	ack    int64   // chatMsg.seq of the init ACK (-1 before it)
	seqs   []int64 // new seqs received before the init ACK (replayed or live)
}

type clEnvelope struct {
	ChatMsg struct {
		SenderID    string `json:"senderId"`
		ReceiverID  string `json:"receiverId"`
		MsgType     int    `json:"msgType"`
		MsgID       string `json:"msgId"`
		ClientMsgID string `json:"clientMsgId"`
		Seq         int64  `json:"seq"`
		TS          string `json:"ts"`
	} `json:"chatMsg"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func newClAudit(t *testing.T, pick func(user string) (string, error)) *clAudit {
	a := &clAudit{t: t, pick: pick, resendAfter: 3 * time.Second, msgs: map[string]*clMsg{},
		pending: map[*clMsg]struct{}{}, stop: make(chan struct{})}
	a.wg.Add(1)
	go a.resender()
	t.Cleanup(a.close)
	return a
}

// clPickFrom makes an audit's pick function from a cluster's dispatcher.
func clPickFrom(c *clCluster) func(string) (string, error) {
	return func(user string) (string, error) {
		n, err := c.pick(user)
		return n.WSURL, err
	}
}

func (a *clAudit) close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	var conns []*websocket.Conn
	for _, d := range a.devs {
		if d.conn != nil {
			conns = append(conns, d.conn)
		}
	}
	a.mu.Unlock()
	close(a.stop)
	for _, c := range conns {
		_ = c.Close()
	}
	a.wg.Wait()
}

func (a *clAudit) fail(format string, args ...any) {
	a.failures = append(a.failures, fmt.Sprintf(format, args...))
}

// device connects a new device of user to url (cursor 0) and waits for its init ACK.
func (a *clAudit) device(user, name, url string) *clDevice {
	a.t.Helper()
	d := &clDevice{a: a, user: user, name: name, seen: map[string]int64{}, receipts: map[string]int{}}
	a.mu.Lock()
	a.devs = append(a.devs, d)
	a.mu.Unlock()
	if err := d.connect(url); err != nil {
		a.t.Fatalf("device %s/%s: %v", user, name, err)
	}
	return d
}

// connect dials url, sends CONNECT_INIT with the cursor and waits for the init ACK.
func (d *clDevice) connect(url string) error {
	a := d.a
	dialer := websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	conn, _, err := dialer.Dial(url, nil)
	if err != nil {
		return fmt.Errorf("dial %s: %w", url, err)
	}
	a.mu.Lock()
	if a.closed || d.closed {
		a.mu.Unlock()
		_ = conn.Close()
		return errors.New("closed")
	}
	d.gen++
	gen, cursor := d.gen, d.cursor
	d.conn, d.url, d.ready = conn, url, false
	d.replays = append(d.replays, clReplay{cursor: cursor, ack: -1})
	a.mu.Unlock()
	initDone := make(chan error, 1)
	a.wg.Add(1)
	go d.readLoop(conn, gen, initDone)
	b, _ := json.Marshal(map[string]any{"chatMsg": map[string]any{"senderId": d.user, "msgType": 0}, "cursor": cursor})
	if err := d.write(conn, b); err != nil {
		_ = conn.Close()
		return err
	}
	select {
	case err := <-initDone:
		return err
	case <-time.After(10 * time.Second):
		_ = conn.Close()
		return fmt.Errorf("%s: no ACK of CONNECT_INIT within 10s", url)
	}
}

func (d *clDevice) write(conn *websocket.Conn, b []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(3 * time.Second))
	err := conn.WriteMessage(websocket.TextMessage, b)
	if err != nil {
		_ = conn.Close() // the read loop notices and reconnects
	}
	return err
}

func (d *clDevice) readLoop(conn *websocket.Conn, gen int, initDone chan error) {
	a := d.a
	defer a.wg.Done()
	inited := false
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			_ = conn.Close()
			a.mu.Lock()
			if d.gen == gen {
				d.conn, d.ready = nil, false
			}
			stopping := a.closed || d.closed
			a.mu.Unlock()
			if !inited {
				initDone <- fmt.Errorf("connection closed before the init ACK: %w", err)
				return
			}
			if !stopping {
				d.reconnectLoop()
			}
			return
		}
		var env clEnvelope
		if err := json.Unmarshal(b, &env); err != nil {
			a.mu.Lock()
			a.fail("%s/%s: bad JSON from the server: %q", d.user, d.name, b)
			a.mu.Unlock()
			continue
		}
		if d.handle(&env, gen, time.Now()) && !inited {
			inited = true
			initDone <- nil
		}
	}
}

// reconnectLoop reconnects until it succeeds or the audit closes; pauses 100 ms between tries.
func (d *clDevice) reconnectLoop() {
	a := d.a
	for {
		select {
		case <-a.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		a.mu.Lock()
		url, stopping := d.url, a.closed || d.closed
		a.mu.Unlock()
		if stopping {
			return
		}
		if a.pick != nil {
			u, err := a.pick(d.user)
			if err != nil {
				continue
			}
			url = u
		}
		if d.connect(url) == nil {
			a.mu.Lock()
			d.reconnects++
			a.mu.Unlock()
			return
		}
	}
}

// handle records one envelope; it reports whether it was the init ACK.
func (d *clDevice) handle(env *clEnvelope, gen int, now time.Time) bool {
	a := d.a
	cm := &env.ChatMsg
	a.mu.Lock()
	defer a.mu.Unlock()
	who := d.user + "/" + d.name
	switch cm.MsgType {
	case 11:
		if cm.MsgID == "" { // ACK of CONNECT_INIT
			if d.gen == gen {
				d.ready = true
				d.replays[len(d.replays)-1].ack = cm.Seq
			}
			for m := range a.pending {
				if m.from == d {
					m.retryNow = true
				}
			}
			return true
		}
		m := a.msgs[d.user+"\x00"+cm.ClientMsgID]
		switch {
		case m == nil:
			a.fail("%s: ACK for unknown clientMsgId %q", who, cm.ClientMsgID)
		case m.msgID == "":
			m.msgID, m.acked = cm.MsgID, now
			delete(a.pending, m)
		case m.msgID != cm.MsgID:
			a.fail("%s: clientMsgId %s acknowledged as %s and later as %s", who, m.cid, m.msgID, cm.MsgID)
		}
	case 12:
		code := ""
		if env.Error != nil {
			code = env.Error.Code
		}
		m := a.msgs[d.user+"\x00"+cm.ClientMsgID]
		if code == "unavailable" && m != nil {
			a.unavailable++
			m.unavailableAnswers++
			if m.msgID == "" {
				m.retryAt = now.Add(500 * time.Millisecond)
			}
			break
		}
		if code == "rate_limited" && m != nil { // the resends were too fast: slow down
			a.rateLimited++
			if m.msgID == "" {
				m.retryAt = now.Add(time.Second)
			}
			break
		}
		a.fail("%s: ERROR %q for %q", who, code, cm.ClientMsgID)
	case 1, 2, 3, 4:
		if cm.Seq <= 0 {
			a.fail("%s: message %s delivered without seq", who, cm.MsgID)
		}
		if _, dup := d.seen[cm.MsgID]; dup {
			d.dups++
			break
		}
		d.seen[cm.MsgID] = cm.Seq
		if d.gen == gen && !d.ready {
			r := &d.replays[len(d.replays)-1]
			r.seqs = append(r.seqs, cm.Seq)
		}
		if d.gen == gen && d.ready && cm.Seq <= d.cursor {
			d.lateOrder = append(d.lateOrder, fmt.Sprintf("seq %d after %d", cm.Seq, d.cursor))
		}
		d.cursor = max(d.cursor, cm.Seq)
		if ns, err := strconv.ParseInt(cm.TS, 10, 64); err == nil && d.ready {
			d.lat = append(d.lat, now.Sub(time.Unix(0, ns)))
		}
	case 8:
		d.receipts[cm.MsgID]++
	case 9:
	default:
		a.fail("%s: unexpected msgType %d", who, cm.MsgType)
	}
	return false
}

// send sends a new WORDS message to user to (now if connected, else once reconnected).
func (d *clDevice) send(to string) *clMsg {
	a := d.a
	a.mu.Lock()
	d.sent++
	m := &clMsg{from: d, sender: d.user, receiver: to, cid: fmt.Sprintf("%s.%s.%d", d.user, d.name, d.sent), first: time.Now()}
	a.msgs[d.user+"\x00"+m.cid] = m
	a.pending[m] = struct{}{}
	conn := d.conn
	if conn != nil && d.ready {
		m.sends++
		m.lastSent = m.first
	}
	a.mu.Unlock()
	if conn != nil && m.sends > 0 {
		_ = d.write(conn, m.frame())
	}
	return m
}

func (m *clMsg) frame() []byte {
	b, _ := json.Marshal(map[string]any{"chatMsg": map[string]any{
		"senderId": m.sender, "receiverId": m.receiver, "msg": "m " + m.cid, "msgType": 1,
		"clientMsgId": m.cid, "ts": strconv.FormatInt(m.first.UnixNano(), 10),
	}})
	return b
}

// sendJSON writes any envelope on the device's current connection.
func (d *clDevice) sendJSON(v any) error {
	d.a.mu.Lock()
	conn := d.conn
	d.a.mu.Unlock()
	if conn == nil {
		return errors.New("not connected")
	}
	b, _ := json.Marshal(v)
	return d.write(conn, b)
}

// clResendBurst bounds the resends of one device per 50 ms tick (60/s).
const clResendBurst = 3

// resender sends unacknowledged messages again, and pings idle connections.
func (a *clAudit) resender() {
	defer a.wg.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastPing := time.Now()
	for {
		select {
		case <-a.stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		type job struct {
			d    *clDevice
			conn *websocket.Conn
			m    *clMsg
		}
		var jobs []job
		var pings []job
		a.mu.Lock()
		var due []*clMsg
		for m := range a.pending {
			d := m.from
			if d.conn == nil || !d.ready {
				continue
			}
			if m.sends == 0 || m.retryNow || (!m.retryAt.IsZero() && now.After(m.retryAt)) ||
				(m.retryAt.IsZero() && now.Sub(m.lastSent) > a.resendAfter) {
				due = append(due, m)
			}
		}
		// Oldest first, at most clResendBurst per device and tick: a device never
		// approaches the node's rate limit, however many messages wait.
		slices.SortFunc(due, func(x, y *clMsg) int { return x.first.Compare(y.first) })
		perDev := map[*clDevice]int{}
		for _, m := range due {
			d := m.from
			if perDev[d] >= clResendBurst {
				continue
			}
			perDev[d]++
			if m.sends > 0 {
				a.resends++
			}
			m.sends++
			m.lastSent, m.retryNow, m.retryAt = now, false, time.Time{}
			jobs = append(jobs, job{d, d.conn, m})
		}
		if now.Sub(lastPing) > 15*time.Second {
			lastPing = now
			for _, d := range a.devs {
				if d.conn != nil {
					pings = append(pings, job{d: d, conn: d.conn})
				}
			}
		}
		a.mu.Unlock()
		for _, j := range jobs {
			_ = j.d.write(j.conn, j.m.frame())
		}
		for _, j := range pings {
			_ = j.d.sendJSON(map[string]any{"chatMsg": map[string]any{"senderId": j.d.user, "msgType": 9}})
		}
	}
}

// steady makes every sender send one message to to(sender) perSec times a second for dur.
// It returns at once; the channel closes when the sending is over.
func (a *clAudit) steady(dur time.Duration, perSec int, senders []*clDevice, to func(*clDevice) string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / time.Duration(perSec))
		defer tick.Stop()
		end := time.Now().Add(dur)
		for time.Now().Before(end) {
			select {
			case <-a.stop:
				return
			case <-tick.C:
			}
			for _, s := range senders {
				s.send(to(s))
			}
		}
	}()
	return done
}

// has reports whether d has seen msgID (and its seq).
func (d *clDevice) has(msgID string) (int64, bool) {
	d.a.mu.Lock()
	defer d.a.mu.Unlock()
	s, ok := d.seen[msgID]
	return s, ok
}

func (d *clDevice) receiptCount(msgID string) int {
	d.a.mu.Lock()
	defer d.a.mu.Unlock()
	return d.receipts[msgID]
}

func (d *clDevice) connectedURL() string {
	d.a.mu.Lock()
	defer d.a.mu.Unlock()
	if d.conn == nil || !d.ready {
		return ""
	}
	return d.url
}

// ackedID answers m's msgId once acknowledged.
func (m *clMsg) ackedID(a *clAudit) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return m.msgID
}

// clAuditReport sums up an audit.
type clAuditReport struct {
	sent, acked, resends, unavailable, rateLimited, dups, reconnects int
	lateOrder                                                        []string
	lat                                                              []time.Duration
}

// missing lists, per device, the acknowledged messages it should have and has not.
func (a *clAudit) missingLocked() (n int, sample string) {
	for _, m := range a.msgs {
		if m.msgID == "" {
			continue
		}
		for _, d := range a.devs {
			if d.closed || (d.user != m.receiver && (d.user != m.sender || d == m.from)) {
				continue
			}
			if _, ok := d.seen[m.msgID]; !ok {
				if n < 5 {
					sample += fmt.Sprintf(" %s(%s→%s, msgId %s) not at %s/%s;", m.cid, m.sender, m.receiver, m.msgID, d.user, d.name)
				}
				n++
			}
		}
	}
	return n, sample
}

// verify waits (≤ d each) until every message is acknowledged and every acknowledged one is
// delivered to every device of its receiver and sender (except the sending device), then
// checks the audit's invariants: no protocol violation, one seq per msgId and one msgId per
// seq for each user, and after each init ACK only seqs above the cursor.
func (a *clAudit) verify(t *testing.T, d time.Duration) clAuditReport {
	t.Helper()
	clWaitState(t, d, "every message is acknowledged", func() (bool, string) {
		a.mu.Lock()
		defer a.mu.Unlock()
		var s []string
		for m := range a.pending {
			if len(s) < 5 {
				s = append(s, fmt.Sprintf("%s (sends %d, unavailable %d)", m.cid, m.sends, m.unavailableAnswers))
			}
		}
		return len(a.pending) == 0, fmt.Sprintf("%d unacknowledged, e.g. %v", len(a.pending), s)
	})
	clWaitState(t, d, "every acknowledged message reached every device", func() (bool, string) {
		a.mu.Lock()
		defer a.mu.Unlock()
		n, sample := a.missingLocked()
		return n == 0, fmt.Sprintf("%d missing:%s", n, sample)
	})
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range a.failures {
		t.Errorf("protocol violation: %s", f)
	}
	r := clAuditReport{resends: a.resends, unavailable: a.unavailable, rateLimited: a.rateLimited}
	for _, m := range a.msgs {
		r.sent++
		if m.msgID != "" {
			r.acked++
		}
	}
	bySeq := map[string]map[int64]string{} // user → seq → msgId
	byMsg := map[string]map[string]int64{} // user → msgId → seq
	for _, dv := range a.devs {
		r.dups += dv.dups
		r.reconnects += dv.reconnects
		r.lat = append(r.lat, dv.lat...)
		for _, lo := range dv.lateOrder {
			r.lateOrder = append(r.lateOrder, dv.user+"/"+dv.name+": "+lo)
		}
		if bySeq[dv.user] == nil {
			bySeq[dv.user], byMsg[dv.user] = map[int64]string{}, map[string]int64{}
		}
		for id, seq := range dv.seen {
			if prev, ok := bySeq[dv.user][seq]; ok && prev != id {
				t.Errorf("user %s: seq %d carries two messages, %s and %s", dv.user, seq, prev, id)
			}
			if prev, ok := byMsg[dv.user][id]; ok && prev != seq {
				t.Errorf("user %s: message %s has seqs %d and %d", dv.user, id, prev, seq)
			}
			bySeq[dv.user][seq], byMsg[dv.user][id] = id, seq
		}
		// Before its init ACK a connection gets every seq after its cursor up to the ACK's
		// seq (replayed, or live while the replay ran).
		for _, rp := range dv.replays {
			if rp.ack < 0 {
				continue
			}
			if rp.ack < rp.cursor {
				t.Errorf("%s/%s: init ACK seq %d below the cursor %d", dv.user, dv.name, rp.ack, rp.cursor)
			}
			for s := rp.cursor + 1; s <= rp.ack; s++ {
				if !slices.Contains(rp.seqs, s) {
					t.Errorf("%s/%s: reconnect with cursor %d, init ACK seq %d: seq %d not replayed (got %v)", dv.user, dv.name, rp.cursor, rp.ack, s, rp.seqs)
					break
				}
			}
		}
	}
	for _, lo := range r.lateOrder {
		t.Errorf("out of seq order after the init ACK: %s", lo)
	}
	return r
}

// checkReplay connects a fresh device of user with cursor 0 and checks that the replay is
// the user's whole inbox: seqs 1..N in order, N the init ACK's seq, holding exactly the
// acknowledged messages the user sent or received.
func (a *clAudit) checkReplay(t *testing.T, user, url string) {
	t.Helper()
	conn, _, err := (&websocket.Dialer{HandshakeTimeout: 3 * time.Second}).Dial(url, nil)
	if err != nil {
		t.Fatalf("replay check: dial %s: %v", url, err)
	}
	defer func() { _ = conn.Close() }()
	if err := conn.WriteJSON(map[string]any{"chatMsg": map[string]any{"senderId": user, "msgType": 0}, "cursor": 0}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	var seqs []int64
	for {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var env clEnvelope
		if err := conn.ReadJSON(&env); err != nil {
			t.Fatalf("replay check of %s: %v", user, err)
		}
		cm := env.ChatMsg
		if cm.MsgType == 11 && cm.MsgID == "" {
			if int64(len(seqs)) != cm.Seq {
				t.Errorf("replay of %s: %d messages, init ACK seq %d", user, len(seqs), cm.Seq)
			}
			break
		}
		if cm.MsgType < 1 || cm.MsgType > 4 {
			continue
		}
		if cm.Seq != int64(len(seqs))+1 {
			t.Errorf("replay of %s: message %d has seq %d", user, len(seqs)+1, cm.Seq)
		}
		if got[cm.MsgID] {
			t.Errorf("replay of %s: %s twice", user, cm.MsgID)
		}
		got[cm.MsgID] = true
		seqs = append(seqs, cm.Seq)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	want := 0
	for _, m := range a.msgs {
		if m.msgID == "" || (m.sender != user && m.receiver != user) {
			continue
		}
		want++
		if !got[m.msgID] {
			t.Errorf("replay of %s lacks acknowledged %s (%s)", user, m.msgID, m.cid)
		}
	}
	if len(got) != want {
		t.Errorf("replay of %s: %d messages, %d acknowledged ones involve the user", user, len(got), want)
	}
}

// checkStore checks the namespace's PostgreSQL tables against the audit: one row per
// acknowledged message (by msg_id and by (sender_id, client_msg_id)), inboxes gap-free
// from 1 and their heads at the last seq.
func (a *clAudit) checkStore(t *testing.T, c *clCluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.mu.Lock()
	acked := map[string]string{} // msgId → cid
	for _, m := range a.msgs {
		if m.msgID != "" {
			acked[m.msgID] = m.cid
		}
	}
	a.mu.Unlock()
	var rows, ids, keys int
	err := c.svc.pg.QueryRow(ctx, `SELECT count(*), count(DISTINCT msg_id), count(DISTINCT (sender_id, client_msg_id)) FROM `+c.ns+`.messages`).Scan(&rows, &ids, &keys)
	if err != nil {
		t.Fatalf("messages: %v", err)
	}
	if rows != len(acked) || ids != rows || keys != rows {
		t.Errorf("messages: %d rows, %d distinct msg_id, %d distinct (sender_id, client_msg_id); %d acknowledged", rows, ids, keys, len(acked))
	}
	r, err := c.svc.pg.Query(ctx, `SELECT msg_id FROM `+c.ns+`.messages`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for r.Next() {
		var id int64
		if err := r.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[strconv.FormatInt(id, 10)] = true
	}
	r.Close()
	for id, cid := range acked {
		if !stored[id] {
			t.Errorf("acknowledged %s (%s) is not stored", id, cid)
		}
	}
	r, err = c.svc.pg.Query(ctx, `SELECT i.user_id, count(*), min(i.seq), max(i.seq), count(DISTINCT i.msg_id), coalesce(max(h.last_seq), -1)
		FROM `+c.ns+`.inbox i LEFT JOIN `+c.ns+`.inbox_heads h ON h.user_id = i.user_id GROUP BY i.user_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for r.Next() {
		var user string
		var n, lo, hi, distinct, head int64
		if err := r.Scan(&user, &n, &lo, &hi, &distinct, &head); err != nil {
			t.Fatal(err)
		}
		if lo != 1 || hi != n || distinct != n || head != hi {
			t.Errorf("inbox of %s: %d rows, seq %d..%d, %d distinct messages, head %d: want gap-free 1..N, one row per message", user, n, lo, hi, distinct, head)
		}
	}
}

// clPercentile answers the p-th percentile (0..100) of ds.
func clPercentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}
