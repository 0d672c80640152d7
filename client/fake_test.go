package client_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"imgate/client"
)

// fakeNode is a scripted node (a test double): each connection is upgraded, its
// CONNECT_INIT read and handed with the connection to script. It lets a test send what a
// real node only sends in rare races (the same message twice).
func fakeNode(t *testing.T, script func(conn net.Conn, init map[string]any)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { _ = nc.Close() }()
				_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
				if _, err := ws.Upgrade(nc); err != nil {
					return
				}
				p, err := wsutil.ReadClientText(nc)
				if err != nil {
					return
				}
				var init map[string]any
				if err := json.Unmarshal(p, &init); err != nil {
					t.Errorf("CONNECT_INIT %q: %v", p, err)
					return
				}
				script(nc, init)
			}()
		}
	}()
	return "ws://" + ln.Addr().String() + "/ws"
}

func writeText(t *testing.T, nc net.Conn, s string) {
	if err := wsutil.WriteServerText(nc, []byte(s)); err != nil {
		t.Errorf("write: %v", err)
	}
}

// TestDuplicatesAreDropped: the same msgId in the replay and live again reaches the app
// once; the cursor still moves to the highest seq seen.
func TestDuplicatesAreDropped(t *testing.T) {
	url := fakeNode(t, func(nc net.Conn, init map[string]any) {
		if init["cursor"] != float64(0) {
			t.Errorf("CONNECT_INIT %v: want cursor 0", init)
		}
		writeText(t, nc, `{"chatMsg":{"senderId":"alice","receiverId":"bob","msg":"a","msgType":1,"msgId":"5","seq":1}}`)
		writeText(t, nc, `{"chatMsg":{"senderId":"alice","receiverId":"bob","msg":"a","msgType":1,"msgId":"5","seq":1}}`)
		writeText(t, nc, `{"chatMsg":{"senderId":"bob","msgType":11,"seq":2}}`)
		writeText(t, nc, `{"chatMsg":{"senderId":"alice","receiverId":"bob","msg":"b","msgType":1,"msgId":"6","seq":2}}`)
		writeText(t, nc, `{"chatMsg":{"senderId":"alice","receiverId":"bob","msg":"a","msgType":1,"msgId":"5","seq":1}}`)
		writeText(t, nc, `{"chatMsg":{"senderId":"alice","receiverId":"bob","msg":"b","msgType":1,"msgId":"6","seq":2}}`)
		_, _ = wsutil.ReadClientText(nc) // until the client closes
	})
	cur := &client.MemoryCursor{}
	bob := startDevice(t, client.Config{UserID: "bob", URL: url, Cursor: cur, ReplayAll: true})
	got := bob.waitMessages(2)
	waitFor(t, 5*time.Second, "3 duplicates dropped", func() bool { return bob.Stats().Duplicates == 3 })
	if len(got) != 2 || got[0].MsgID != 5 || got[1].MsgID != 6 {
		t.Fatalf("bob got %+v", got)
	}
	waitFor(t, 5*time.Second, "cursor 2", func() bool { seq, _, _ := cur.Load(); return seq == 2 })
	if len(bob.messages()) != 2 {
		t.Fatalf("bob got %d messages", len(bob.messages()))
	}
}

// TestPickHonoursRetryAfter: a dispatcher with no live node answers 503 with Retry-After;
// the Client asks again no sooner than that, then connects to the node it names.
func TestPickHonoursRetryAfter(t *testing.T) {
	nodeURL := fakeNode(t, func(nc net.Conn, _ map[string]any) {
		writeText(t, nc, `{"chatMsg":{"senderId":"bob","msgType":11}}`)
		_, _ = wsutil.ReadClientText(nc)
	})
	var asked atomic.Int32
	var first, second atomic.Int64
	disp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes/pick" || r.URL.Query().Get("userId") != "bob" {
			t.Errorf("request %s", r.URL)
		}
		switch asked.Add(1) {
		case 1:
			first.Store(time.Now().UnixNano())
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":503,"msg":"no live node","success":false,"data":null}`))
		default:
			second.CompareAndSwap(0, time.Now().UnixNano())
			_, _ = w.Write([]byte(`{"status":200,"msg":"OK","success":true,"data":{"ip":"127.0.0.1","port":1,"wsUrl":"` + nodeURL + `"}}`))
		}
	}))
	t.Cleanup(disp.Close)
	bob := startDevice(t, client.Config{UserID: "bob", Dispatcher: disp.URL})
	bob.waitConnected()
	if gap := time.Duration(second.Load() - first.Load()); gap < time.Second {
		t.Fatalf("asked again after %s, Retry-After was 1s", gap)
	}
	_, err := client.Pick(context.Background(), nil, disp.URL, "bob")
	if err != nil {
		t.Fatal(err)
	}
}
