package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"imgate/codec"
	"imgate/health"
	"imgate/message"
)

// fakeHistory is an in-memory History over one inbox, ascending by seq.
type fakeHistory struct {
	mu      sync.Mutex
	inbox   []message.Entry
	err     error
	panics  bool
	lastReq [4]any // userID, peerID, beforeSeq, limit of the last call
}

func (f *fakeHistory) History(_ context.Context, userID, peerID string, beforeSeq int64, limit int) ([]message.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastReq = [4]any{userID, peerID, beforeSeq, limit}
	if f.panics {
		panic("store exploded")
	}
	if f.err != nil {
		return nil, f.err
	}
	var out []message.Entry
	for i := len(f.inbox) - 1; i >= 0 && len(out) < limit; i-- {
		e := f.inbox[i]
		if beforeSeq > 0 && e.Seq >= beforeSeq {
			continue
		}
		if peerID != "" && e.Msg.SenderID != peerID && e.Msg.ReceiverID != peerID {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

func (f *fakeHistory) last() [4]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastReq
}

// presenceFunc adapts a function to Presence.
type presenceFunc func(ctx context.Context, userID string) (map[string]int, error)

func (f presenceFunc) Presence(ctx context.Context, userID string) (map[string]int, error) {
	return f(ctx, userID)
}

// inbox returns n messages of alice's inbox, seq 1..n, alternately with bob and carol.
func inbox(n int) []message.Entry {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 123_000_000, time.UTC)
	out := make([]message.Entry, n)
	for i := range out {
		peer := "bob"
		if i%2 == 1 {
			peer = "carol"
		}
		seq := int64(i + 1)
		out[i] = message.Entry{Seq: seq, SenderConn: 71, Msg: codec.ChatMsg{
			SenderID: "alice", ReceiverID: peer, Msg: "hi", MsgType: codec.Words,
			MsgID: 7392012345678901000 + seq, ChatTime: t0.Add(time.Duration(i) * time.Second), Seq: seq,
		}}
	}
	return out
}

// testServer is a started Server and a client for it.
type testServer struct {
	srv    *Server
	base   string
	client *http.Client
}

func startServer(t *testing.T, cfg Config, deps Deps) *testServer {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// fasthttp's idle-worker cleaner notices Shutdown only after sleeping this long;
	// keep it short so the leak check at exit does not wait for it.
	s.http.MaxIdleWorkerDuration = 50 * time.Millisecond
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections) // runs before Shutdown (cleanups are LIFO)
	addr := s.Addr().(*net.TCPAddr)
	if addr.IP.IsUnspecified() {
		addr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: addr.Port}
	}
	return &testServer{srv: s, base: "http://" + addr.String(), client: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (ts *testServer) do(t *testing.T, method, path, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, ts.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// jsonEqual reports whether a and b hold the same JSON value.
func jsonEqual(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON: %v: %s", err, want)
	}
	return reflect.DeepEqual(g, w)
}

var testNodes = StaticView{
	{ID: "im-0000000003", IP: "127.0.0.1", Port: 875, OnlineCounts: 12, WSURL: "ws://127.0.0.1:875/ws"},
	{ID: "im-0000000001", IP: "127.0.0.1", Port: 876, OnlineCounts: 40, Draining: true},
	{ID: "im-0000000002", IP: "::1", Port: 877, OnlineCounts: 30},
}

const pickedBody = `{"status":200,"msg":"OK","success":true,"data":{"ip":"127.0.0.1","port":875,"onlineCounts":12,"nodeId":"im-0000000003","wsUrl":"ws://127.0.0.1:875/ws"}}`

func TestRoutes(t *testing.T) {
	hist := &fakeHistory{inbox: inbox(120)}
	pres := presenceFunc(func(_ context.Context, userID string) (map[string]int, error) {
		switch userID {
		case "alice":
			return map[string]int{"im-2": 1, "im-1": 2, "im-9": 0}, nil
		case "broken":
			return nil, errors.New("redis: connection refused")
		}
		return nil, nil
	})
	ts := startServer(t, Config{}, Deps{Nodes: testNodes, History: hist, Presence: pres,
		Health: []health.Check{{Name: "zookeeper", Check: func(context.Context) error { return nil }}}})

	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		wantStatus  int
		wantBody    string // JSON, compared by value
		wantExact   bool   // also compare bytes
		wantAllow   string
		wantHistory []any // the History call's userID, peerID, beforeSeq, limit
	}{
		{name: "legacy pick", method: "POST", path: "/getNettyOnlineInfo",
			wantStatus: 200, wantBody: pickedBody, wantExact: true},
		{name: "legacy pick with form userId", method: "POST", path: "/getNettyOnlineInfo",
			contentType: "application/x-www-form-urlencoded", body: "userId=alice",
			wantStatus: 200, wantBody: pickedBody},
		{name: "legacy pick with query userId and JSON body", method: "POST", path: "/getNettyOnlineInfo?userId=alice",
			contentType: "application/json", body: `{"userId":"alice"}`,
			wantStatus: 200, wantBody: pickedBody},
		{name: "legacy pick wrong method", method: "GET", path: "/getNettyOnlineInfo",
			wantStatus: 405, wantAllow: "POST",
			wantBody: `{"status":405,"msg":"method not allowed","success":false,"data":null}`, wantExact: true},
		{name: "pick", method: "GET", path: "/api/v1/nodes/pick?userId=alice",
			wantStatus: 200, wantBody: pickedBody, wantExact: true},
		{name: "pick without userId", method: "GET", path: "/api/v1/nodes/pick",
			wantStatus: 200, wantBody: pickedBody},
		{name: "pick wrong method", method: "POST", path: "/api/v1/nodes/pick",
			wantStatus: 405, wantAllow: "GET, HEAD",
			wantBody: `{"status":405,"msg":"method not allowed","success":false,"data":null}`},
		{name: "nodes", method: "GET", path: "/api/v1/nodes",
			wantStatus: 200, wantBody: `{"status":200,"msg":"OK","success":true,"data":{"nodes":[
				{"ip":"127.0.0.1","port":876,"onlineCounts":40,"nodeId":"im-0000000001","wsUrl":"ws://127.0.0.1:876/ws","draining":true,"recentPicks":0},
				{"ip":"::1","port":877,"onlineCounts":30,"nodeId":"im-0000000002","wsUrl":"ws://[::1]:877/ws","draining":false,"recentPicks":0},
				{"ip":"127.0.0.1","port":875,"onlineCounts":12,"nodeId":"im-0000000003","wsUrl":"ws://127.0.0.1:875/ws","draining":false,"recentPicks":5}]}}`},
		{name: "nodes wrong method", method: "DELETE", path: "/api/v1/nodes",
			wantStatus: 405, wantAllow: "GET, HEAD",
			wantBody: `{"status":405,"msg":"method not allowed","success":false,"data":null}`},
		{name: "unknown path", method: "GET", path: "/api/v1/nope",
			wantStatus: 404, wantBody: `{"status":404,"msg":"not found","success":false,"data":null}`, wantExact: true},
		{name: "unknown path trailing slash", method: "GET", path: "/api/v1/nodes/",
			wantStatus: 404, wantBody: `{"status":404,"msg":"not found","success":false,"data":null}`},
		{name: "messages page", method: "GET", path: "/api/v1/messages?userId=alice&peerId=bob&beforeSeq=10&limit=2",
			wantStatus: 200, wantHistory: []any{"alice", "bob", int64(10), 3},
			wantBody: `{"status":200,"msg":"OK","success":true,"data":{"messages":[
				{"senderId":"alice","receiverId":"bob","msg":"hi","msgType":1,"msgId":"7392012345678901009","chatTime":"2026-11-27T10:00:08.123Z","seq":9},
				{"senderId":"alice","receiverId":"bob","msg":"hi","msgType":1,"msgId":"7392012345678901007","chatTime":"2026-11-27T10:00:06.123Z","seq":7}],
				"hasMore":true,"nextBeforeSeq":7}}`},
		{name: "messages last page", method: "GET", path: "/api/v1/messages?userId=alice&peerId=carol&beforeSeq=5",
			wantStatus: 200, wantHistory: []any{"alice", "carol", int64(5), 51},
			wantBody: `{"status":200,"msg":"OK","success":true,"data":{"messages":[
				{"senderId":"alice","receiverId":"carol","msg":"hi","msgType":1,"msgId":"7392012345678901004","chatTime":"2026-11-27T10:00:03.123Z","seq":4},
				{"senderId":"alice","receiverId":"carol","msg":"hi","msgType":1,"msgId":"7392012345678901002","chatTime":"2026-11-27T10:00:01.123Z","seq":2}],
				"hasMore":false,"nextBeforeSeq":null}}`},
		{name: "messages none", method: "GET", path: "/api/v1/messages?userId=alice&peerId=dave",
			wantStatus: 200, wantHistory: []any{"alice", "dave", int64(0), 51},
			wantBody: `{"status":200,"msg":"OK","success":true,"data":{"messages":[],"hasMore":false,"nextBeforeSeq":null}}`},
		{name: "messages missing userId", method: "GET", path: "/api/v1/messages?peerId=bob",
			wantStatus: 400, wantBody: `{"status":400,"msg":"userId is required","success":false,"data":null}`},
		{name: "messages bad limit", method: "GET", path: "/api/v1/messages?userId=alice&limit=zero",
			wantStatus: 400, wantBody: `{"status":400,"msg":"limit must be a positive integer","success":false,"data":null}`},
		{name: "messages negative limit", method: "GET", path: "/api/v1/messages?userId=alice&limit=-3",
			wantStatus: 400, wantBody: `{"status":400,"msg":"limit must be a positive integer","success":false,"data":null}`},
		{name: "messages negative overflow limit", method: "GET", path: "/api/v1/messages?userId=alice&limit=-99999999999999999999",
			wantStatus: 400, wantBody: `{"status":400,"msg":"limit must be a positive integer","success":false,"data":null}`},
		{name: "messages overflow non-numeric limit", method: "GET", path: "/api/v1/messages?userId=alice&limit=99999999999999999999x",
			wantStatus: 400, wantBody: `{"status":400,"msg":"limit must be a positive integer","success":false,"data":null}`},
		{name: "messages zero limit", method: "GET", path: "/api/v1/messages?userId=alice&limit=0",
			wantStatus: 400, wantBody: `{"status":400,"msg":"limit must be a positive integer","success":false,"data":null}`},
		{name: "messages negative beforeSeq", method: "GET", path: "/api/v1/messages?userId=alice&beforeSeq=-1",
			wantStatus: 400, wantBody: `{"status":400,"msg":"beforeSeq must be a non-negative integer","success":false,"data":null}`},
		{name: "messages huge userId", method: "GET", path: "/api/v1/messages?userId=" + strings.Repeat("a", 300),
			wantStatus: 400, wantBody: `{"status":400,"msg":"userId is too long","success":false,"data":null}`},
		{name: "messages wrong method", method: "DELETE", path: "/api/v1/messages?userId=alice",
			wantStatus: 405, wantAllow: "GET, HEAD, POST",
			wantBody: `{"status":405,"msg":"method not allowed","success":false,"data":null}`},
		{name: "presence online", method: "GET", path: "/api/v1/presence?userId=alice",
			wantStatus: 200, wantExact: true,
			wantBody: `{"status":200,"msg":"OK","success":true,"data":{"userId":"alice","online":true,"nodes":{"im-1":2,"im-2":1}}}`},
		{name: "presence offline", method: "GET", path: "/api/v1/presence?userId=zed",
			wantStatus: 200,
			wantBody:   `{"status":200,"msg":"OK","success":true,"data":{"userId":"zed","online":false,"nodes":{}}}`},
		{name: "presence escapes userId", method: "GET", path: "/api/v1/presence?userId=" + url.QueryEscape(`a"<b>`),
			wantStatus: 200,
			wantBody:   `{"status":200,"msg":"OK","success":true,"data":{"userId":"a\"<b>","online":false,"nodes":{}}}`},
		{name: "presence missing userId", method: "GET", path: "/api/v1/presence",
			wantStatus: 400, wantBody: `{"status":400,"msg":"userId is required","success":false,"data":null}`},
		{name: "presence failure", method: "GET", path: "/api/v1/presence?userId=broken",
			wantStatus: 503, wantBody: `{"status":503,"msg":"presence unavailable","success":false,"data":null}`},
		{name: "healthz", method: "GET", path: "/healthz",
			wantStatus: 200, wantBody: `{"status":"ok","checks":{}}`, wantExact: true},
		{name: "readyz", method: "GET", path: "/readyz",
			wantStatus: 200, wantBody: `{"status":"ok","checks":{"zookeeper":"ok"}}`, wantExact: true},
		{name: "healthz wrong method", method: "POST", path: "/healthz",
			wantStatus: 405, wantAllow: "GET, HEAD",
			wantBody: `{"status":405,"msg":"method not allowed","success":false,"data":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(t, tt.method, tt.path, tt.contentType, tt.body)
			if r.status != tt.wantStatus {
				t.Errorf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if srv := r.header.Get("Server"); srv != "imgate" {
				t.Errorf("Server %q, want imgate", srv)
			}
			if tt.wantAllow != "" && r.header.Get("Allow") != tt.wantAllow {
				t.Errorf("Allow %q, want %q", r.header.Get("Allow"), tt.wantAllow)
			}
			if tt.wantExact && string(r.body) != tt.wantBody {
				t.Errorf("body\n got %s\nwant %s", r.body, tt.wantBody)
			} else if !jsonEqual(t, r.body, tt.wantBody) {
				t.Errorf("body\n got %s\nwant %s", r.body, tt.wantBody)
			}
			if tt.wantHistory != nil {
				if got := hist.last(); !slices.Equal(got[:], tt.wantHistory) {
					t.Errorf("History called with %v, want %v", got, tt.wantHistory)
				}
			}
		})
	}
}

func TestMessagesLimits(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		query     string
		wantLimit int // passed to History: the page plus one
		wantCount int
	}{
		{name: "default page", query: "", wantLimit: 51, wantCount: 50},
		{name: "explicit", query: "&limit=7", wantLimit: 8, wantCount: 7},
		{name: "max", query: "&limit=200", wantLimit: 201, wantCount: 200},
		{name: "over max clamped", query: "&limit=500", wantLimit: 201, wantCount: 200},
		{name: "int overflow clamped", query: "&limit=99999999999999999999", wantLimit: 201, wantCount: 200},
		{name: "int64 max clamped", query: "&limit=9223372036854775807", wantLimit: 201, wantCount: 200},
		{name: "plus sign overflow clamped", query: "&limit=%2B99999999999999999999", wantLimit: 201, wantCount: 200},
		{name: "configured max", cfg: Config{HistoryLimit: 20}, query: "&limit=50", wantLimit: 21, wantCount: 20},
		{name: "configured max below default page", cfg: Config{HistoryLimit: 10}, query: "", wantLimit: 11, wantCount: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hist := &fakeHistory{inbox: inbox(300)}
			ts := startServer(t, tt.cfg, Deps{Nodes: testNodes, History: hist})
			r := ts.do(t, "GET", "/api/v1/messages?userId=alice"+tt.query, "", "")
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if got := hist.last()[3]; got != tt.wantLimit {
				t.Errorf("History limit %v, want %d", got, tt.wantLimit)
			}
			var out struct {
				Data struct {
					Messages      []map[string]any `json:"messages"`
					HasMore       bool             `json:"hasMore"`
					NextBeforeSeq *int64           `json:"nextBeforeSeq"`
				} `json:"data"`
			}
			if err := json.Unmarshal(r.body, &out); err != nil {
				t.Fatal(err)
			}
			if len(out.Data.Messages) != tt.wantCount || !out.Data.HasMore || out.Data.NextBeforeSeq == nil {
				t.Fatalf("%d messages, hasMore %v, next %v; want %d, true, set",
					len(out.Data.Messages), out.Data.HasMore, out.Data.NextBeforeSeq, tt.wantCount)
			}
			if want := int64(300 - tt.wantCount + 1); *out.Data.NextBeforeSeq != want {
				t.Errorf("nextBeforeSeq %d, want %d", *out.Data.NextBeforeSeq, want)
			}
		})
	}
}

func TestMessagesPagination(t *testing.T) {
	hist := &fakeHistory{inbox: inbox(95)}
	ts := startServer(t, Config{}, Deps{Nodes: testNodes, History: hist})
	var seqs []int64
	path := "/api/v1/messages?userId=alice&limit=40"
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		r := ts.do(t, "GET", path, "", "")
		var out struct {
			Data struct {
				Messages []struct {
					Seq int64 `json:"seq"`
				} `json:"messages"`
				HasMore       bool   `json:"hasMore"`
				NextBeforeSeq *int64 `json:"nextBeforeSeq"`
			} `json:"data"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Data.Messages {
			seqs = append(seqs, m.Seq)
		}
		if !out.Data.HasMore {
			break
		}
		path = "/api/v1/messages?userId=alice&limit=40&beforeSeq=" + jsonInt(*out.Data.NextBeforeSeq)
	}
	if len(seqs) != 95 || seqs[0] != 95 || seqs[94] != 1 || !slices.IsSortedFunc(seqs, func(a, b int64) int { return int(b - a) }) {
		t.Fatalf("paged seqs = %v, want 95..1", seqs)
	}
}

func jsonInt(v int64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestMessagesExtraAndEscaping(t *testing.T) {
	hist := &fakeHistory{inbox: []message.Entry{{Seq: 3, Msg: codec.ChatMsg{
		SenderID: "al\"ice", ReceiverID: "bob", Msg: "line\n<b>é😀\u2028", MsgType: codec.Image,
		MsgID: 42, ClientMsgID: "a-17", Extra: []byte(`"w":640,"h":480`),
	}}}}
	ts := startServer(t, Config{}, Deps{Nodes: testNodes, History: hist})
	r := ts.do(t, "GET", "/api/v1/messages?userId=bob", "", "")
	want := `{"status":200,"msg":"OK","success":true,"data":{"messages":[
		{"senderId":"al\"ice","receiverId":"bob","msg":"line\n<b>é😀\u2028","msgType":2,"msgId":"42","clientMsgId":"a-17","seq":3,"w":640,"h":480}],
		"hasMore":false,"nextBeforeSeq":null}}`
	if r.status != 200 || !jsonEqual(t, r.body, want) {
		t.Fatalf("got %d %s\nwant %s", r.status, r.body, want)
	}
}

func TestUnavailableBackends(t *testing.T) {
	tests := []struct {
		name       string
		deps       Deps
		path       string
		wantStatus int
		wantMsg    string
	}{
		{name: "no live node", deps: Deps{Nodes: StaticView{}}, path: "/api/v1/nodes/pick?userId=u",
			wantStatus: 503, wantMsg: "no live node"},
		{name: "only draining nodes", deps: Deps{Nodes: StaticView{{ID: "a", Draining: true}}}, path: "/api/v1/nodes/pick",
			wantStatus: 503, wantMsg: "no live node"},
		{name: "no store", deps: Deps{Nodes: testNodes}, path: "/api/v1/messages?userId=u",
			wantStatus: 503, wantMsg: "history not available: no message store"},
		{name: "store down", deps: Deps{Nodes: testNodes, History: &fakeHistory{err: errors.New("pq: connection refused")}},
			path: "/api/v1/messages?userId=u", wantStatus: 503, wantMsg: "history unavailable"},
		{name: "store panics", deps: Deps{Nodes: testNodes, History: &fakeHistory{panics: true}},
			path: "/api/v1/messages?userId=u", wantStatus: 500, wantMsg: "internal error"},
		{name: "no presence", deps: Deps{Nodes: testNodes}, path: "/api/v1/presence?userId=u",
			wantStatus: 404, wantMsg: "presence not available"},
		{name: "empty node list", deps: Deps{Nodes: StaticView{}}, path: "/api/v1/nodes",
			wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Config{}, tt.deps)
			r := ts.do(t, "GET", tt.path, "", "")
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantStatus == 200 {
				if !jsonEqual(t, r.body, `{"status":200,"msg":"OK","success":true,"data":{"nodes":[]}}`) {
					t.Fatalf("body %s", r.body)
				}
				return
			}
			want := `{"status":` + jsonInt(int64(tt.wantStatus)) + `,"msg":"` + tt.wantMsg + `","success":false,"data":null}`
			if string(r.body) != want {
				t.Fatalf("body\n got %s\nwant %s", r.body, want)
			}
			if ra := r.header.Get("Retry-After"); (tt.wantMsg == msgNoLiveNode) != (ra != "") {
				t.Fatalf("Retry-After %q on %s", ra, tt.wantMsg)
			}
		})
	}
}

// TestNoLiveNodeRetryAfter: both pick routes answer a cluster without a live node with
// the exact body of PROTOCOL §1 and tell the client when to ask again.
func TestNoLiveNodeRetryAfter(t *testing.T) {
	ts := startServer(t, Config{}, Deps{Nodes: StaticView{}})
	for _, r := range []response{
		ts.do(t, "GET", "/api/v1/nodes/pick?userId=u", "", ""),
		ts.do(t, "POST", "/getNettyOnlineInfo", "application/x-www-form-urlencoded", "userId=u"),
	} {
		if r.status != 503 || string(r.body) != `{"status":503,"msg":"no live node","success":false,"data":null}` ||
			r.header.Get("Retry-After") != "2" {
			t.Fatalf("got %d %s Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
		}
	}
}

// TestHealthzAnswersAsNetHTTP checks that the dispatcher's /readyz (fasthttp) and
// health.Checker on net/http (the node and saver roles) give the same answer for the
// same checks: status, body and content type; a panicking check is a failed check.
func TestHealthzAnswersAsNetHTTP(t *testing.T) {
	ok := func(context.Context) error { return nil }
	tests := []struct {
		name       string
		checks     []health.Check
		wantStatus int
		wantBody   string
	}{
		{name: "no checks", wantStatus: 200, wantBody: `{"status":"ok","checks":{}}`},
		{name: "all ok", checks: []health.Check{{Name: "zookeeper", Check: ok}, {Name: "redis", Check: ok}},
			wantStatus: 200, wantBody: `{"status":"ok","checks":{"zookeeper":"ok","redis":"ok"}}`},
		{name: "one fails", checks: []health.Check{{Name: "zookeeper", Check: ok}, {Name: "redis", Check: func(context.Context) error {
			return errors.New(`dial tcp 127.0.0.1:6379: connect: connection refused`)
		}}},
			wantStatus: 503, wantBody: `{"status":"fail","checks":{"zookeeper":"ok","redis":"dial tcp 127.0.0.1:6379: connect: connection refused"}}`},
		{name: "one times out", checks: []health.Check{{Name: "slow", Check: func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}}, {Name: "zookeeper", Check: ok}},
			wantStatus: 503, wantBody: `{"status":"fail","checks":{"slow":"timed out after 50ms","zookeeper":"ok"}}`},
		{name: "one panics", checks: []health.Check{{Name: "bad", Check: func(context.Context) error { panic("boom") }}},
			wantStatus: 503, wantBody: `{"status":"fail","checks":{"bad":"health: check bad panicked: boom"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Config{CheckTimeout: 50 * time.Millisecond}, Deps{Nodes: testNodes, Health: tt.checks})
			r := ts.do(t, "GET", "/readyz", "", "")
			if r.status != tt.wantStatus || string(r.body) != tt.wantBody {
				t.Fatalf("dispatch: got %d %s\nwant %d %s", r.status, r.body, tt.wantStatus, tt.wantBody)
			}

			checker, err := health.New(tt.checks, 50*time.Millisecond, nil)
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(checker.ReadyHandler())
			defer hs.Close()
			resp, err := http.Get(hs.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != r.status || string(body) != string(r.body) {
				t.Fatalf("net/http: got %d %s\ndispatch  %d %s", resp.StatusCode, body, r.status, r.body)
			}
			for _, h := range []string{"Content-Type", "Cache-Control"} {
				if got, want := resp.Header.Get(h), r.header.Get(h); got != want {
					t.Errorf("%s: net/http %q, dispatch %q", h, got, want)
				}
			}
		})
	}
}

func TestPickOverHTTPSpreads(t *testing.T) {
	view := StaticView{
		{ID: "im-1", IP: "127.0.0.1", Port: 1001},
		{ID: "im-2", IP: "127.0.0.1", Port: 1002},
		{ID: "im-3", IP: "127.0.0.1", Port: 1003, OnlineCounts: 20},
	}
	ts := startServer(t, Config{}, Deps{Nodes: view})
	got := map[string]int{}
	for range 100 {
		r := ts.do(t, "POST", "/getNettyOnlineInfo", "", "")
		var out struct {
			Data struct {
				NodeID string `json:"nodeId"`
				WSURL  string `json:"wsUrl"`
			} `json:"data"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil || r.status != 200 {
			t.Fatalf("%d %s: %v", r.status, r.body, err)
		}
		got[out.Data.NodeID]++
	}
	// im-1 and im-2 fill up to 20 each first, then the 60 left spread evenly.
	if got["im-1"] != 40 || got["im-2"] != 40 || got["im-3"] != 20 {
		t.Fatalf("picks %v, want im-1:40 im-2:40 im-3:20", got)
	}
}

func TestHeadAndBadRequests(t *testing.T) {
	ts := startServer(t, Config{MaxRequestBodySize: 1024}, Deps{Nodes: testNodes})

	r := ts.do(t, "HEAD", "/healthz", "", "")
	if r.status != 200 || len(r.body) != 0 {
		t.Fatalf("HEAD /healthz: %d %q", r.status, r.body)
	}

	r = ts.do(t, "POST", "/getNettyOnlineInfo", "application/x-www-form-urlencoded", "userId="+strings.Repeat("x", 4096))
	want := `{"status":413,"msg":"request body too large","success":false,"data":null}`
	if r.status != 413 || string(r.body) != want {
		t.Fatalf("large body: %d %s", r.status, r.body)
	}

	// A request line fasthttp cannot parse, on a raw connection.
	c, err := net.Dial("tcp", ts.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GARBAGE\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	raw, _ := io.ReadAll(c)
	if !bytes.HasPrefix(raw, []byte("HTTP/1.1 400")) || !bytes.Contains(raw, []byte(`{"status":400,"msg":"bad request","success":false,"data":null}`)) {
		t.Fatalf("garbage request answered %q", raw)
	}
}

// recordHandler is a slog.Handler that keeps the records.
type recordHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordHandler) at(level slog.Level) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.records {
		if r.Level == level {
			out = append(out, r)
		}
	}
	return out
}

func TestErrorsLoggedOnce(t *testing.T) {
	h := &recordHandler{}
	hist := &fakeHistory{err: errors.New("pq: connection refused")}
	ts := startServer(t, Config{Logger: slog.New(h)}, Deps{Nodes: testNodes, History: hist})

	ts.do(t, "GET", "/api/v1/messages?userId=u", "", "")
	errs := h.at(slog.LevelError)
	if len(errs) != 1 {
		t.Fatalf("%d error records, want 1", len(errs))
	}
	var cause string
	errs[0].Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			cause = a.Value.String()
		}
		return true
	})
	if !strings.Contains(cause, "pq: connection refused") || !strings.HasPrefix(cause, "dispatch: ") {
		t.Fatalf("logged err %q, want the store's error prefixed with dispatch:", cause)
	}

	// Within the same second further 5xx are counted, not logged.
	ts.do(t, "GET", "/api/v1/messages?userId=u", "", "")
	if n := len(h.at(slog.LevelError)); n != 1 {
		t.Fatalf("%d error records after a second failure within 1s, want 1", n)
	}
	// 4xx go to debug.
	ts.do(t, "GET", "/api/v1/messages", "", "")
	if n := len(h.at(slog.LevelDebug)); n != 1 {
		t.Fatalf("%d debug records for a 400, want 1", n)
	}
}

func TestLogThrottle(t *testing.T) {
	var th logThrottle
	t0 := time.Unix(1000, 0)
	if n, ok := th.allow(t0); !ok || n != 0 {
		t.Fatalf("first: %d %v", n, ok)
	}
	for i := range 3 {
		if _, ok := th.allow(t0.Add(time.Duration(i) * 100 * time.Millisecond)); ok {
			t.Fatal("allowed within a second")
		}
	}
	if n, ok := th.allow(t0.Add(time.Second)); !ok || n != 3 {
		t.Fatalf("after a second: %d %v, want 3 true", n, ok)
	}
}
