package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "webhook-test-secret-0123"

// post is one POST as the receiver saw it.
type post struct {
	Event    string `json:"event"`
	Messages []struct {
		UserID  string         `json:"userId"`
		Seq     int64          `json:"seq"`
		ChatMsg map[string]any `json:"chatMsg"`
	} `json:"messages"`
	size int
}

// receiver is a real HTTP server on 127.0.0.1 that checks every signature the way a
// receiver written from the docs would, and answers with the status its script gives.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex
	posts  []post        // accepted (2xx) posts, in arrival order
	hits   int           // every request
	script []int         // statuses to answer, one per request; then 200
	gate   chan struct{} // when set, requests wait for it to close
	inside chan struct{} // when set, gets a value as a request enters
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// newReceiverOn serves on l (a port the test chose before the receiver came up).
func newReceiverOn(t *testing.T, l net.Listener) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.Listener = l
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

// verify is what a receiver does: HMAC-SHA256 of the raw body under the shared
// secret, hex, compared in constant time with the header after "sha256=".
func verify(body []byte, header string) bool {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(want), []byte(header))
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.hits++
	gate, inside := r.gate, r.inside
	status := http.StatusOK
	if len(r.script) > 0 {
		status, r.script = r.script[0], r.script[1:]
	}
	r.mu.Unlock()
	if inside != nil {
		inside <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	switch {
	case req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json":
		r.t.Errorf("got %s with Content-Type %q", req.Method, req.Header.Get("Content-Type"))
	case !verify(body, req.Header.Get("X-Imgate-Signature")):
		r.t.Errorf("signature %q does not verify", req.Header.Get("X-Imgate-Signature"))
		status = http.StatusUnauthorized
	}
	if status/100 == 2 {
		var p post
		if err := json.Unmarshal(body, &p); err != nil {
			r.t.Errorf("body is not JSON: %v: %s", err, body)
		}
		p.size = len(body)
		r.mu.Lock()
		r.posts = append(r.posts, p)
		r.mu.Unlock()
	}
	w.WriteHeader(status)
}

// counts returns how often each (userId, seq) arrived in accepted posts.
func (r *receiver) counts() map[key]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[key]int{}
	for _, p := range r.posts {
		for _, m := range p.Messages {
			out[key{m.UserID, m.Seq}]++
		}
	}
	return out
}

func (r *receiver) snapshot() (posts []post, hits int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]post(nil), r.posts...), r.hits
}

type key struct {
	user string
	seq  int64
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
