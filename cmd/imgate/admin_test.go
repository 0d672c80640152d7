package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imgate/cluster/clustertest"
)

const testAPIKey = "admin-key-of-the-tests-0123456789"

// apiKeyFile writes testAPIKey to a file readable by the roles (--api-key-file).
func apiKeyFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "api-key")
	if err := os.WriteFile(p, []byte(testAPIKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// adminCall sends method url with the bearer key (none when key is empty) through apiCall
// and decodes the envelope's data into data on a 200; it returns the status.
func adminCall(t *testing.T, method, url, key string, data any) int {
	t.Helper()
	status, env := apiCall(t, method, url, key, nil)
	if data != nil && status == http.StatusOK {
		raw, err := json.Marshal(env["data"])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, data); err != nil {
			t.Fatalf("%s %s: data %s: %v", method, url, raw, err)
		}
	}
	return status
}

// closeWatch is a bound client that records when and with which code its connection closed.
type closeWatch struct {
	user string
	code int
	at   time.Time
	done chan struct{}
}

// watchClose connects user to url (CONNECT_INIT without cursor), waits for the init ACK and
// then reads until the connection closes.
func watchClose(t *testing.T, url, user string) *closeWatch {
	t.Helper()
	w, _, _ := dialUser(t, url, user, -1)
	cw := &closeWatch{user: user, code: -1, done: make(chan struct{})}
	go func() {
		defer close(cw.done)
		_ = w.c.SetReadDeadline(time.Now().Add(60 * time.Second))
		for {
			if _, _, err := w.c.ReadMessage(); err != nil {
				cw.at = time.Now()
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					cw.code = ce.Code
				}
				return
			}
		}
	}()
	return cw
}

func (cw *closeWatch) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-cw.done:
	case <-time.After(d):
		t.Fatalf("%s: connection still open after %v", cw.user, d)
	}
}

// TestStandaloneAdminDrainSpreadsCloses checks the admin routes of the standalone process:
// the API key is required (401 without, 403 with a key-less server is covered in
// TestAdminRoutesNeedAnAPIKey), sessions lists a user's devices, kick closes them with
// 1008, and drain takes the node out of the pick and closes its clients with 1001 spread
// over the window, not all at once; SIGTERM afterwards stops at once.
func TestStandaloneAdminDrainSpreadsCloses(t *testing.T) {
	p := startImgate(t, "--store", "memory", "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--api-key-file", apiKeyFile(t), "--drain-window", "30s", "--event-loops", "1")
	if st := adminCall(t, "GET", p.HTTP+"/api/v1/admin/nodes", "", nil); st != http.StatusUnauthorized {
		t.Fatalf("admin nodes without key: status %d, want 401", st)
	}
	if st := adminCall(t, "GET", p.HTTP+"/api/v1/admin/nodes", "wrong-key", nil); st != http.StatusUnauthorized {
		t.Fatalf("admin nodes with a wrong key: status %d, want 401", st)
	}

	const n = 30
	clients := make([]*closeWatch, n)
	for i := range clients {
		clients[i] = watchClose(t, p.WS, "u"+strconv.Itoa(i))
	}
	second := watchClose(t, p.WS, "u1") // u1's second device

	var sessions struct {
		Sessions []struct{ NodeID, ConnID, RemoteAddr string }
	}
	if st := adminCall(t, "GET", p.HTTP+"/api/v1/admin/sessions?userId=u1", testAPIKey, &sessions); st != 200 {
		t.Fatalf("admin sessions: status %d", st)
	}
	if len(sessions.Sessions) != 2 || sessions.Sessions[0].NodeID != "standalone" || sessions.Sessions[0].ConnID == "" ||
		sessions.Sessions[0].RemoteAddr == "" {
		t.Fatalf("sessions of u1: %+v, want 2 on standalone with connId and remoteAddr", sessions.Sessions)
	}
	var kicked struct{ Closed int }
	if st := adminCall(t, "POST", p.HTTP+"/api/v1/admin/kick?userId=u1", testAPIKey, &kicked); st != 200 || kicked.Closed != 2 {
		t.Fatalf("kick u1: status %d, closed %d; want 200, 2", st, kicked.Closed)
	}
	for _, cw := range []*closeWatch{clients[1], second} {
		cw.wait(t, 10*time.Second)
		if cw.code != 1008 {
			t.Errorf("kicked device: close code %d, want 1008", cw.code)
		}
	}

	var nodes struct {
		Nodes []struct {
			NodeID   string
			Draining bool
		}
	}
	if st := adminCall(t, "GET", p.HTTP+"/api/v1/admin/nodes", testAPIKey, &nodes); st != 200 || len(nodes.Nodes) != 1 || nodes.Nodes[0].Draining {
		t.Fatalf("admin nodes: status %d, %+v", st, nodes.Nodes)
	}
	if st := adminCall(t, "POST", p.HTTP+"/api/v1/admin/drain?nodeId=im-0000000099&window=2s", testAPIKey, nil); st != http.StatusNotFound {
		t.Fatalf("drain of an unknown node: status %d, want 404", st)
	}
	const window = 2 * time.Second
	start := time.Now()
	if st := adminCall(t, "POST", p.HTTP+"/api/v1/admin/drain?nodeId=standalone&window=2s", testAPIKey, nil); st != 200 {
		t.Fatalf("drain: status %d", st)
	}
	if st := adminCall(t, "GET", p.HTTP+"/api/v1/nodes/pick?userId=x", "", nil); st != http.StatusServiceUnavailable {
		t.Errorf("pick while draining: status %d, want 503 (no live node)", st)
	}
	var first, last time.Time
	for i, cw := range clients {
		if i == 1 {
			continue // kicked
		}
		cw.wait(t, 20*time.Second)
		if cw.code != 1001 {
			t.Errorf("%s: close code %d, want 1001", cw.user, cw.code)
		}
		if first.IsZero() || cw.at.Before(first) {
			first = cw.at
		}
		if cw.at.After(last) {
			last = cw.at
		}
	}
	t.Logf("drain of %d clients over a %v window: first close after %v, last after %v",
		n-1, window, first.Sub(start).Round(time.Millisecond), last.Sub(start).Round(time.Millisecond))
	// The rounds are 100 ms apart and each closes its share of what is left (one event
	// loop: 29 clients, 20 rounds, the last ones one a round): the last client cannot go
	// before the last rounds, however fast or slow the machine.
	if spread := last.Sub(first); spread < window/2 {
		t.Errorf("closes spread over %v, want about the %v window (not all at once)", spread, window)
	}
	if _, _, err := websocket.DefaultDialer.Dial(p.WS, nil); err == nil {
		t.Errorf("a new connection to a draining node was accepted")
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("a drained standalone did not exit within 10s of SIGTERM (its --drain-window is 30s, but nobody is left)")
	}
}

// TestAdminRoutesNeedAnAPIKey checks that the admin routes are closed, not open, when the
// server has no API key, even though history and presence are open in that development
// default.
func TestAdminRoutesNeedAnAPIKey(t *testing.T) {
	p := startImgate(t, "--store", "none", "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/admin/nodes"}, {"GET", "/api/v1/admin/sessions?userId=a"},
		{"POST", "/api/v1/admin/kick?userId=a"}, {"POST", "/api/v1/admin/drain?nodeId=standalone"},
	} {
		if st := adminCall(t, r.method, p.HTTP+r.path, "anything", nil); st != http.StatusForbidden {
			t.Errorf("%s %s without --api-key: status %d, want 403", r.method, r.path, st)
		}
	}
}

// TestClusterAdminReachesNodes checks the dispatcher's admin routes against real nodes:
// sessions of a user with devices on two nodes, kick closing them on both (1008), and a
// drain through `imgate drain` that sets the znode's draining flag and takes the node out
// of the pick.
func TestClusterAdminReachesNodes(t *testing.T) {
	c, disp, nodes, keyFile := startAdminCluster(t, 2)
	url := nodeURLs(t, c)
	for id, n := range c.ServerList() {
		if a, _ := n["adminUrl"].(string); a == "" || n["ip"] == nil || n["port"] == nil || n["onlineCounts"] == nil {
			t.Errorf("znode %s: %v, want ip, port, onlineCounts and adminUrl", id, n)
		}
	}
	d1 := watchClose(t, url[nodes[0].ID], "alice")
	d2 := watchClose(t, url[nodes[1].ID], "alice")
	var sessions struct {
		Sessions []struct{ NodeID, ConnID string }
	}
	if st := adminCall(t, "GET", disp.HTTP+"/api/v1/admin/sessions?userId=alice", testAPIKey, &sessions); st != 200 {
		t.Fatalf("admin sessions: status %d", st)
	}
	on := map[string]int{}
	for _, s := range sessions.Sessions {
		on[s.NodeID]++
	}
	if len(sessions.Sessions) != 2 || on[nodes[0].ID] != 1 || on[nodes[1].ID] != 1 {
		t.Fatalf("sessions of alice: %+v, want one on each of %s, %s", sessions.Sessions, nodes[0].ID, nodes[1].ID)
	}
	var kicked struct{ Closed int }
	if st := adminCall(t, "POST", disp.HTTP+"/api/v1/admin/kick?userId=alice", testAPIKey, &kicked); st != 200 || kicked.Closed != 2 {
		t.Fatalf("kick alice: status %d, closed %d; want 200, 2", st, kicked.Closed)
	}
	for _, d := range []*closeWatch{d1, d2} {
		d.wait(t, 10*time.Second)
		if d.code != 1008 {
			t.Errorf("kicked device: close code %d, want 1008", d.code)
		}
	}

	out, err := runBin(t, "drain", "--dispatcher", disp.HTTP, "--node-id", nodes[0].ID, "--window", "1s", "--api-key-file", keyFile)
	if err != nil {
		t.Fatalf("imgate drain: %v\n%s", err, out)
	}
	t.Logf("imgate drain: %s", out)
	clustertest.WaitState(t, 10*time.Second, "the znode and the dispatcher say draining", func() (bool, string) {
		zn := c.ServerList()[nodes[0].ID]
		listed, _ := c.Nodes()
		for _, n := range listed {
			if n.NodeID == nodes[0].ID {
				return zn["draining"] == true && n.Draining, fmt.Sprint(zn, n)
			}
		}
		return false, fmt.Sprint(zn, listed)
	})
	for i := range 20 {
		if n, err := c.Pick("user" + strconv.Itoa(i)); err != nil || n.NodeID == nodes[0].ID {
			t.Fatalf("pick while %s drains: %+v, %v", nodes[0].ID, n, err)
		}
	}
	if out, err := runBin(t, "drain", "--dispatcher", disp.HTTP, "--node-id", "im-0000999999", "--api-key-file", keyFile); err == nil {
		t.Errorf("imgate drain of an unknown node succeeded: %s", out)
	}
}

// startAdminCluster starts a saver, a dispatcher and n nodes that share the test's API key
// (admin routes on) and drain over 1 s; it returns the key's file for `imgate drain`.
func startAdminCluster(t *testing.T, n int) (*clustertest.Cluster, *clustertest.Proc, []*clustertest.Proc, string) {
	t.Helper()
	keyFile := apiKeyFile(t)
	c := clustertest.NewCluster(t, binPath)
	c.NodeExtra = []string{"--api-key-file", keyFile, "--drain-window", "1s"}
	c.DispatchExtra = []string{"--api-key-file", keyFile}
	c.StartSaver()
	disp := c.StartDispatch()
	return c, disp, c.StartNodes(n), keyFile
}

// runBin runs the binary under test with args and returns its combined output.
func runBin(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(binPath, args...).CombinedOutput() //nolint:gosec // G204: the binary under test
	return string(out), err
}
