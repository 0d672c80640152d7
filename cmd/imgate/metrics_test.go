package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imgate/cluster/clustertest"
	"imgate/health"
)

// scrape reads GET base/metrics and returns each sample by its series, written as in the
// exposition: name{label="value",...} (labels in the order the registry sorts them).
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", base, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %d %q %s", base, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape %s: bad sample %q", base, line)
		}
		out[line[:i]] = v
	}
	return out
}

// wantSeries checks that every series in want exists with a value at least the one given.
func wantSeries(t *testing.T, role string, got map[string]float64, want map[string]float64) {
	t.Helper()
	for series, least := range want {
		v, ok := got[series]
		if !ok {
			t.Errorf("%s /metrics: no series %s", role, series)
			continue
		}
		if v < least {
			t.Errorf("%s /metrics: %s = %v, want at least %v", role, series, v, least)
		}
	}
}

// chat binds alice at ws, sends one message to bob and waits for its ACK, then sends one
// with a forged senderId and waits for its ERROR forbidden; it returns alice's connection.
func chat(t *testing.T, ws string) *wsClient {
	t.Helper()
	alice, _, _ := dialUser(t, ws, "alice", -1)
	alice.send(map[string]any{"chatMsg": map[string]any{"senderId": "alice", "receiverId": "bob", "msg": "hi", "msgType": 1, "clientMsgId": "m1"}})
	if cm := alice.read(); cm["msgType"].(float64) != 11 {
		t.Fatalf("want ACK, got %v", cm)
	}
	alice.send(map[string]any{"chatMsg": map[string]any{"senderId": "mallory", "receiverId": "bob", "msg": "hi", "msgType": 1}})
	if cm := alice.read(); cm["msgType"].(float64) != 12 {
		t.Fatalf("want ERROR, got %v", cm)
	}
	return alice
}

// badInit opens a connection whose first message is not CONNECT_INIT and waits for 4400.
func badInit(t *testing.T, ws string) {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial(ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.WriteJSON(map[string]any{"chatMsg": map[string]any{"senderId": "x", "msgType": 1}})
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, 4400) {
		t.Fatalf("want close 4400, got %v", err)
	}
}

// pick asks the dispatcher at base for a node.
func pick(t *testing.T, base string) {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/nodes/pick?userId=alice")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("pick: %d", resp.StatusCode)
	}
}

// TestStandaloneMetrics scrapes a standalone process after a bound client, a message,
// a refused message, a failed CONNECT_INIT and a pick: the node's, the store's and the
// dispatcher's series are there with those counts, and the failed init is in the log.
func TestStandaloneMetrics(t *testing.T) {
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "memory")
	chat(t, p.WS)
	badInit(t, p.WS)
	pick(t, p.HTTP)
	var got map[string]float64
	clustertest.WaitFor(t, 10*time.Second, "the ACK's written latency", func() bool {
		got = scrape(t, p.HTTP)
		return got[`imgate_message_latency_seconds_count{stage="written"}`] >= 1
	})
	wantSeries(t, "standalone", got, map[string]float64{
		`imgate_connections{state="bound"}`:                                1,
		`imgate_connections{state="handshaking"}`:                          0,
		`imgate_binds_total`:                                               1,
		`imgate_messages_accepted_total`:                                   1,
		`imgate_messages_refused_total{code="forbidden"}`:                  1,
		`imgate_messages_refused_total{code="unavailable"}`:                0,
		`imgate_closes_total{code="4400",reason="bad_init"}`:               1,
		`imgate_deliveries_total`:                                          1,
		`imgate_replayed_messages_total`:                                   0,
		`imgate_gap_repairs_total`:                                         0,
		`imgate_outbound_queue_bytes`:                                      0,
		`imgate_accept_errors_total`:                                       0,
		`imgate_message_latency_seconds_count{stage="persisted"}`:          1,
		`imgate_message_latency_seconds_bucket{stage="written",le="+Inf"}`: 1,
		`imgate_store_batch_records_count`:                                 1,
		`imgate_store_commit_seconds_count`:                                1,
		`imgate_store_commit_failures_total`:                               0,
		`imgate_dependency_up{dependency="node"}`:                          1,
		`imgate_dependency_up{dependency="store"}`:                         1,
		`imgate_picks_total{node="standalone"}`:                            1,
		`go_goroutines`:                                                    1,
	})
	if got[`imgate_messages_refused_total{code="forbidden"}`] != 1 || got[`imgate_messages_accepted_total`] != 1 {
		t.Errorf("accepted %v, refused forbidden %v: want 1 and 1", got[`imgate_messages_accepted_total`], got[`imgate_messages_refused_total{code="forbidden"}`])
	}
	clustertest.WaitFor(t, 5*time.Second, "the failed CONNECT_INIT in the log", func() bool {
		for _, l := range p.Log() {
			if strings.Contains(l, "connection closed by the server") && strings.Contains(l, "reason=bad_init") && strings.Contains(l, "code=4400") {
				return true
			}
		}
		return false
	})
}

// TestClusterMetrics scrapes each cluster role after a message crossed it: the node
// (connections, messages, broker confirms, presence lag, its four dependencies), the
// saver (store transactions, broker confirms, save queue depth) and the dispatcher
// (picks per node).
func TestClusterMetrics(t *testing.T) {
	c := clustertest.NewCluster(t, binPath)
	saver := c.StartSaver()
	disp := c.StartDispatch()
	node := c.StartNodes(1)[0]
	chat(t, node.WS)
	pick(t, disp.HTTP)

	t.Run("node", func(t *testing.T) {
		var got map[string]float64
		clustertest.WaitFor(t, 10*time.Second, "the ACK's written latency", func() bool {
			got = scrape(t, node.Health)
			return got[`imgate_message_latency_seconds_count{stage="written"}`] >= 1
		})
		wantSeries(t, "node", got, map[string]float64{
			`imgate_connections{state="bound"}`:                       1,
			`imgate_messages_accepted_total`:                          1,
			`imgate_messages_refused_total{code="forbidden"}`:         1,
			`imgate_message_latency_seconds_count{stage="persisted"}`: 1,
			`imgate_broker_confirm_seconds_count`:                     1,
			`imgate_presence_write_lag_seconds`:                       0,
			`imgate_unanswered_records`:                               0,
			`imgate_dependency_up{dependency="zookeeper"}`:            1,
			`imgate_dependency_up{dependency="rabbitmq"}`:             1,
			`imgate_dependency_up{dependency="redis"}`:                1,
			`imgate_dependency_up{dependency="postgres"}`:             1,
		})
		if lag := got[`imgate_presence_write_lag_seconds`]; lag > 5 {
			t.Errorf("presence write lag %v s with Redis up", lag)
		}
		if n := got[`imgate_unanswered_records`]; n != 0 {
			t.Errorf("%v records unanswered after their ACKs", n)
		}
	})
	t.Run("saver", func(t *testing.T) {
		got := scrape(t, saver.Health)
		wantSeries(t, "saver", got, map[string]float64{
			`imgate_store_batch_records_count`:            1,
			`imgate_store_batch_records_sum`:              1,
			`imgate_store_commit_seconds_count`:           1,
			`imgate_broker_confirm_seconds_count`:         1,
			`imgate_saver_receive_age_seconds_count`:      1,
			`imgate_save_queue_messages`:                  0,
			`imgate_dependency_up{dependency="rabbitmq"}`: 1,
			`imgate_dependency_up{dependency="postgres"}`: 1,
		})
	})
	t.Run("dispatch", func(t *testing.T) {
		got := scrape(t, disp.HTTP)
		wantSeries(t, "dispatch", got, map[string]float64{
			`imgate_picks_total{node="` + node.ID + `"}`:   1,
			`imgate_dependency_up{dependency="zookeeper"}`: 1,
			`imgate_dependency_up{dependency="redis"}`:     1,
			`imgate_dependency_up{dependency="postgres"}`:  1,
		})
	})
}

// TestDependencyDown checks that a failing health check reads 0 on /metrics while
// /healthz names it.
func TestDependencyDown(t *testing.T) {
	h, err := startHealth("127.0.0.1:0", []health.Check{
		stateCheck("rabbitmq", func() error { return errors.New("connection refused") }),
		stateCheck("redis", func() error { return nil }),
	}, newRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Shutdown(context.Background()) }()
	got := scrape(t, "http://"+h.Addr().String())
	if v, ok := got[`imgate_dependency_up{dependency="rabbitmq"}`]; !ok || v != 0 {
		t.Errorf("rabbitmq: %v %v, want 0", v, ok)
	}
	if got[`imgate_dependency_up{dependency="redis"}`] != 1 {
		t.Errorf("redis: want 1, got %v", got)
	}
}

// TestDashboardUsesDocumentedMetrics keeps deploy/grafana/imgate.json and the table of
// docs/operations.md in step: the dashboard is valid JSON and every imgate_ series it
// queries is documented.
func TestDashboardUsesDocumentedMetrics(t *testing.T) {
	dash, err := os.ReadFile("../../deploy/grafana/imgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dash, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`imgate_[a-z_]+`)
	seen := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					m = strings.TrimSuffix(m, suffix)
				}
				seen++
				if !strings.Contains(string(doc), "| `"+m+"` |") {
					t.Errorf("the dashboard queries %s, which docs/operations.md does not list", m)
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("the dashboard queries no imgate_ series")
	}
}
