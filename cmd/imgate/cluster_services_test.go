package main

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"imgate/cluster/clustertest"
)

// TestClusterMissingService starts each role with one service unreachable: it exits
// non-zero within --connect-timeout (plus slack for the race-built binary) and its log
// names the service.
func TestClusterMissingService(t *testing.T) {
	c := clustertest.NewCluster(t, binPath)
	const connectTimeout = 2 * time.Second
	const slack = 6 * time.Second
	unreachable := map[string]string{
		"--zk":    "127.0.0.1:1",
		"--redis": "127.0.0.1:1",
		"--pg":    "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable",
		"--amqp":  "amqp://guest:guest@127.0.0.1:1/",
	}
	cases := []struct {
		role, flag, word string
		args             func() []string
	}{
		{"node", "--zk", "zookeeper", func() []string { return c.NodeArgs(1) }},
		{"node", "--redis", "redis", func() []string { return c.NodeArgs(2) }},
		{"node", "--pg", "postgres", func() []string { return c.NodeArgs(3) }},
		{"node", "--amqp", "rabbitmq", func() []string { return c.NodeArgs(4) }},
		{"saver", "--amqp", "rabbitmq", c.SaverArgs},
		{"saver", "--pg", "postgres", c.SaverArgs},
		{"dispatch", "--zk", "zookeeper", c.DispatchArgs},
		{"dispatch", "--redis", "redis", c.DispatchArgs},
		{"dispatch", "--pg", "postgres", c.DispatchArgs},
	}
	t.Run("group", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.role+" "+strings.TrimPrefix(tc.flag, "--"), func(t *testing.T) {
				t.Parallel()
				args := tc.args()
				args[slices.Index(args, tc.flag)+1] = unreachable[tc.flag]
				args[slices.Index(args, "--connect-timeout")+1] = connectTimeout.String()
				p := c.Add(clustertest.Start(t, binPath, tc.role+"-no-"+tc.word, false, args...))
				select {
				case <-p.Exited():
				case <-time.After(connectTimeout + slack):
					t.Fatalf("still running %v after start (connect timeout %v):\n%s", connectTimeout+slack, connectTimeout, p.Tail(20))
				}
				took := time.Since(p.Start)
				var ee *exec.ExitError
				if !errors.As(p.Err, &ee) || ee.ExitCode() == 0 {
					t.Fatalf("exit %v, want a non-zero status:\n%s", p.Err, p.Tail(20))
				}
				log := strings.ToLower(strings.Join(p.Log(), "\n"))
				if !strings.Contains(log, tc.word) || !strings.Contains(log, "unreachable") && !strings.Contains(log, "127.0.0.1:1") {
					t.Fatalf("the log does not name %s:\n%s", tc.word, p.Tail(20))
				}
				t.Logf("exit status %d after %v: %s", ee.ExitCode(), took.Round(10*time.Millisecond), lastLine(p.Log()))
			})
		}
	})
	// Nodes that got a port before failing gave it back.
	if claims := c.PortClaims(); len(claims) != 0 {
		t.Errorf("port claims left by nodes that failed to start: %v", claims)
	}
}

func lastLine(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

// TestClusterBrokerOutage cuts every connection of the roles to RabbitMQ (through a proxy
// in the test) for about 3 s, then lets them reconnect.
func TestClusterBrokerOutage(t *testing.T) {
	c := clustertest.NewCluster(t, binPath)
	proxy, url := amqpProxy(t)
	c.AMQPURL = url
	brokerOutage(t, c, proxy.Cut, proxy.Heal)
}

// amqpProxy returns a proxy to RabbitMQ that the test can cut and heal, and the AMQP URL
// that reaches the broker through it.
func amqpProxy(t *testing.T) (*clustertest.Proxy, string) {
	t.Helper()
	u, err := amqp.ParseURI(clustertest.AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := clustertest.NewProxy(t, net.JoinHostPort(u.Host, strconv.Itoa(u.Port)))
	u.Host, u.Port = "127.0.0.1", proxy.Port()
	return proxy, u.String()
}

// brokerOutage runs the broker outage scenario on c (not started yet): steady traffic,
// cut() takes the broker away, ~3 s later heal() brings it back. While it is away the
// nodes' /readyz fail on rabbitmq and a node answers new content with ERROR unavailable;
// after heal() every role is healthy again and nothing acknowledged is lost.
func brokerOutage(t *testing.T, c *clustertest.Cluster, cut, heal func()) {
	saver := c.StartSaver()
	c.StartDispatch()
	nodes := c.StartNodes(2)
	url := nodeURLs(t, c)
	u1, u2 := url[nodes[0].ID], url[nodes[1].ID]

	a := newAudit(t, pickFrom(c))
	a.resendAfter = time.Second
	devs := []*auditDevice{a.device("alice", "d1", u1), a.device("bob", "d1", u2), a.device("alice", "d2", u2), a.device("carol", "d1", u1)}
	next := map[string]string{"alice": "bob", "bob": "carol", "carol": "alice"}
	done := a.steady(8*time.Second, 20, devs, func(d *auditDevice) string { return next[d.user] })
	clustertest.WaitFor(t, 10*time.Second, "traffic flows (40 messages acknowledged)", func() bool { return a.ackedCount() >= 40 })

	cut()
	cutAt := time.Now()
	healthy := func(base string) (bool, string) {
		st, checks := clustertest.Health(base)
		return st == 200 && checks["rabbitmq"] == "ok", fmt.Sprint(st, checks)
	}
	d := clustertest.WaitState(t, 10*time.Second, "every node's /readyz is 503 with rabbitmq failing", func() (bool, string) {
		for _, n := range nodes {
			st, checks := clustertest.Health(n.Health)
			if st != 503 || checks["rabbitmq"] == "ok" || checks["rabbitmq"] == "" {
				return false, fmt.Sprint(n.Name, st, checks)
			}
		}
		return true, ""
	})
	t.Logf("nodes unhealthy %v after the cut", d.Round(time.Millisecond))
	probe := a.device("dave", "probe", u1)
	pm := probe.send("alice")
	clustertest.WaitFor(t, 5*time.Second, "a node answers new content with ERROR unavailable", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return pm.unavailableAnswers > 0
	})
	if pause := 3*time.Second - time.Since(cutAt); pause > 0 {
		time.Sleep(pause) // the scenario: the broker stays away ~3 s
	}
	a.mu.Lock()
	probeAcked, unavailableDuringCut := pm.msgID, a.unavailable
	a.mu.Unlock()
	if probeAcked != "" {
		t.Errorf("content sent during the outage was acknowledged (%s)", probeAcked)
	}
	heal()
	healAt := time.Now()
	d = clustertest.WaitState(t, 30*time.Second, "every node and the saver are healthy again", func() (bool, string) {
		for _, p := range append([]*clustertest.Proc{saver}, nodes...) {
			if ok, s := healthy(p.Health); !ok {
				return false, p.Name + ": " + s
			}
		}
		return true, ""
	})
	t.Logf("healthy %v after the broker came back", d.Round(time.Millisecond))
	clustertest.WaitFor(t, 15*time.Second, "the probe sent during the outage is acknowledged", func() bool { return pm.ackedID(a) != "" })
	t.Logf("probe acknowledged %v after the broker came back", time.Since(healAt).Round(time.Millisecond))
	<-done
	rep := a.verify(t, 30*time.Second)
	t.Logf("audit: sent %d, acked %d, resent %d, ERROR unavailable %d (%d during the outage), rate_limited %d, duplicates dropped %d, reconnects %d",
		rep.sent, rep.acked, rep.resends, rep.unavailable, unavailableDuringCut, rep.rateLimited, rep.dups, rep.reconnects)
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		a.checkReplay(t, u, u2)
	}
	a.checkStore(t, c)
}
