package webhook_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
	"imgate/webhook"
)

// entries returns n offline entries for user, seqs from+1..from+n, each msg of size bytes.
func entries(user string, from, n, size int) []message.Offline {
	out := make([]message.Offline, n)
	for i := range out {
		seq := int64(from + i + 1)
		out[i] = message.Offline{UserID: user, Seq: seq, Msg: codec.ChatMsg{
			SenderID: "alice", ReceiverID: user, MsgType: codec.Words, MsgID: 1000 + seq,
			Msg: strings.Repeat("x", size-1) + "\n", ChatTime: time.UnixMilli(1_800_000_000_000).UTC(),
			Extra: []byte(`"w":640`),
		}}
	}
	return out
}

func newSender(t *testing.T, cfg webhook.Config) *webhook.Sender {
	t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = secret
	}
	s, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

func closeSender(t testing.TB, s *webhook.Sender, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.Close(ctx)
}

// TestBatchesBySizeAndLinger: 25 messages with MaxBatch 10 go as 10, 10 and, once the
// linger passes, 5; each item carries userId, seq and the chatMsg as a device gets it.
func TestBatchesBySizeAndLinger(t *testing.T) {
	r := newReceiver(t)
	s := newSender(t, webhook.Config{URL: r.srv.URL, MaxBatch: 10, Linger: 50 * time.Millisecond, Workers: 1})
	s.Enqueue(entries("bob", 0, 25, 10))
	// The receiver records a POST before its answer reaches the sender: wait for both.
	waitFor(t, 10*time.Second, "25 messages", func() bool { return len(r.counts()) == 25 && s.Stats().Sent == 25 })
	posts, _ := r.snapshot()
	var sizes []int
	for _, p := range posts {
		sizes = append(sizes, len(p.Messages))
		if p.Event != "message.offline" {
			t.Errorf("event %q", p.Event)
		}
	}
	if fmt.Sprint(sizes) != "[10 10 5]" {
		t.Fatalf("batch sizes %v, want [10 10 5]", sizes)
	}
	m := posts[0].Messages[0]
	cm := m.ChatMsg
	if m.UserID != "bob" || m.Seq != 1 || cm["seq"] != 1.0 || cm["msgId"] != "1001" || cm["receiverId"] != "bob" ||
		cm["msg"] != "xxxxxxxxx\n" || cm["w"] != 640.0 || cm["chatTime"] != "2027-01-15T08:00:00.000Z" {
		t.Fatalf("first item %+v", m)
	}
	if st := s.Stats(); st.Sent != 25 || st.Posts != 3 || st.Enqueued != 25 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestBatchesByBytes: a batch stops before MaxBatchBytes; a message larger than it
// goes alone.
func TestBatchesByBytes(t *testing.T) {
	r := newReceiver(t)
	s := newSender(t, webhook.Config{URL: r.srv.URL, MaxBatchBytes: 4 << 10, Linger: time.Hour, Workers: 1})
	s.Enqueue(entries("bob", 0, 10, 1000))  // ~1.2 KiB each: 3 per POST
	s.Enqueue(entries("bob", 10, 1, 8<<10)) // alone
	if err := closeSender(t, s, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	posts, _ := r.snapshot()
	var sizes []int
	for _, p := range posts {
		sizes = append(sizes, len(p.Messages))
		if len(p.Messages) > 1 && p.size > 4<<10+100 {
			t.Errorf("a POST of %d messages has %d bytes", len(p.Messages), p.size)
		}
	}
	if fmt.Sprint(sizes) != "[3 3 3 1 1]" {
		t.Fatalf("batch sizes %v, want [3 3 3 1 1]", sizes)
	}
}

// TestSignatureCoversTheBody: the receiver checks every POST (receiver.serve); here a
// body changed by one byte no longer verifies under the same header.
func TestSignatureCoversTheBody(t *testing.T) {
	var body []byte
	var header string
	srv := newReceiver(t)
	srv.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			t.Error(err)
		}
		srv.mu.Lock()
		body, header = b, req.Header.Get("X-Imgate-Signature")
		srv.mu.Unlock()
	})
	s := newSender(t, webhook.Config{URL: srv.srv.URL, Linger: time.Millisecond})
	s.Enqueue(entries("bob", 0, 1, 10))
	waitFor(t, 10*time.Second, "the POST", func() bool { srv.mu.Lock(); defer srv.mu.Unlock(); return body != nil })
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !strings.HasPrefix(header, "sha256=") || len(header) != len("sha256=")+64 {
		t.Fatalf("header %q", header)
	}
	if !verify(body, header) {
		t.Fatal("the signature does not verify")
	}
	body[len(body)-2] ^= 1
	if verify(body, header) {
		t.Fatal("a changed body still verifies")
	}
}

// TestReceiverDownThenBack: the receiver's port refuses connections while messages
// arrive; once a server listens there every message arrives, each at least once.
func TestReceiverDownThenBack(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // down: connection refused
	s := newSender(t, webhook.Config{URL: "http://" + addr + "/hook", MaxBatch: 20, Linger: time.Millisecond,
		RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	for i := range 5 {
		s.Enqueue(entries("bob", i*20, 20, 10))
	}
	waitFor(t, 10*time.Second, "retries against the closed port", func() bool { return s.Stats().Retries >= 4 })
	var l2 net.Listener
	waitFor(t, 10*time.Second, "the port to listen again", func() bool {
		l2, err = net.Listen("tcp", addr)
		return err == nil
	})
	r := newReceiverOn(t, l2)
	waitFor(t, 20*time.Second, "all 100 messages", func() bool { return len(r.counts()) == 100 && s.Stats().Sent >= 100 })
	if err := closeSender(t, s, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	dups := 0
	for k, n := range r.counts() {
		if k.user != "bob" || k.seq < 1 || k.seq > 100 {
			t.Fatalf("unexpected %v", k)
		}
		dups += n - 1
	}
	st := s.Stats()
	t.Logf("retries %d, posts %d, duplicates %d", st.Retries, st.Posts, dups)
	if st.Sent != 100+int64(dups) || st.DroppedOverflow+st.DroppedRejected+st.DroppedExpired != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRetries5xxAnd429: 503, 500 and 429 are retried; the batch then arrives once.
func TestRetries5xxAnd429(t *testing.T) {
	r := newReceiver(t)
	r.script = []int{http.StatusServiceUnavailable, http.StatusInternalServerError, http.StatusTooManyRequests}
	s := newSender(t, webhook.Config{URL: r.srv.URL, Linger: time.Millisecond, Workers: 1,
		RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond})
	s.Enqueue(entries("bob", 0, 7, 10))
	waitFor(t, 10*time.Second, "7 messages", func() bool { return len(r.counts()) == 7 })
	if err := closeSender(t, s, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, hits := r.snapshot(); hits != 4 {
		t.Fatalf("%d requests, want 4", hits)
	}
	if st := s.Stats(); st.Retries != 3 || st.Sent != 7 || st.Posts != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRefusalIsNotRetried: a 4xx other than 429 (and a 3xx) drops the batch after one
// request, counted; the next batch goes on.
func TestRefusalIsNotRetried(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusFound} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			r := newReceiver(t)
			r.script = []int{status}
			s := newSender(t, webhook.Config{URL: r.srv.URL, Linger: time.Millisecond, Workers: 1,
				RetryMin: time.Millisecond, RetryMax: time.Millisecond})
			s.Enqueue(entries("bob", 0, 3, 10))
			waitFor(t, 10*time.Second, "the refusal", func() bool { return s.Stats().DroppedRejected == 3 })
			s.Enqueue(entries("bob", 3, 2, 10))
			if err := closeSender(t, s, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			posts, hits := r.snapshot()
			if hits != 2 || len(posts) != 1 || len(posts[0].Messages) != 2 {
				t.Fatalf("%d requests, accepted %+v; want the refused one and the next", hits, posts)
			}
			if st := s.Stats(); st.Retries != 0 || st.Sent != 2 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestFullQueueDropsOldest: while the only worker's POST hangs, a queue of 5 keeps the
// 5 newest of 12 messages and counts 7 dropped.
func TestFullQueueDropsOldest(t *testing.T) {
	r := newReceiver(t)
	r.gate, r.inside = make(chan struct{}), make(chan struct{}, 1)
	s := newSender(t, webhook.Config{URL: r.srv.URL, QueueLen: 5, Linger: time.Millisecond, Workers: 1})
	s.Enqueue(entries("bob", 0, 1, 10)) // taken by the worker, its POST held by the gate
	<-r.inside
	for i := range 12 {
		s.Enqueue(entries("bob", 1+i, 1, 10))
	}
	if st := s.Stats(); st.DroppedOverflow != 7 || st.Queued != 5 {
		t.Fatalf("stats %+v", st)
	}
	r.mu.Lock()
	r.inside = nil
	r.mu.Unlock()
	close(r.gate)
	if err := closeSender(t, s, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	got := r.counts()
	want := []int64{1, 9, 10, 11, 12, 13}
	if len(got) != len(want) {
		t.Fatalf("got %v, want seqs %v", got, want)
	}
	for _, seq := range want {
		if got[key{"bob", seq}] != 1 {
			t.Fatalf("got %v, want seqs %v once each", got, want)
		}
	}
}

// TestGivesUpAfter: a receiver that keeps failing costs the batch after GiveUpAfter,
// counted as expired.
func TestGivesUpAfter(t *testing.T) {
	r := newReceiver(t)
	r.script = make([]int, 1000)
	for i := range r.script {
		r.script[i] = http.StatusBadGateway
	}
	s := newSender(t, webhook.Config{URL: r.srv.URL, Linger: time.Millisecond, RetryMin: time.Millisecond,
		RetryMax: 5 * time.Millisecond, GiveUpAfter: 100 * time.Millisecond})
	s.Enqueue(entries("bob", 0, 4, 10))
	waitFor(t, 10*time.Second, "the batch to expire", func() bool { return s.Stats().DroppedExpired == 4 })
	if st := s.Stats(); st.Sent != 0 || st.Retries == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCloseDeadline: with the receiver down, Close returns at its deadline, says how
// many were lost and counts them; Enqueue after Close drops and counts.
func TestCloseDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	s := newSender(t, webhook.Config{URL: "http://" + addr, Linger: time.Hour, MaxBatch: 5, Workers: 1,
		RetryMin: 5 * time.Millisecond, RetryMax: 5 * time.Millisecond})
	s.Enqueue(entries("bob", 0, 12, 10))
	start := time.Now()
	err = closeSender(t, s, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "12 messages") {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
	s.Enqueue(entries("bob", 12, 2, 10))
	if st := s.Stats(); st.DroppedShutdown != 14 || st.Enqueued != 12 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  webhook.Config
		ok   bool
	}{
		{"minimal", webhook.Config{URL: "https://push.example.com/hook", Secret: secret}, true},
		{"no url", webhook.Config{Secret: secret}, false},
		{"ftp", webhook.Config{URL: "ftp://x/y", Secret: secret}, false},
		{"no host", webhook.Config{URL: "http:///x", Secret: secret}, false},
		{"short secret", webhook.Config{URL: "http://x", Secret: "short"}, false},
		{"negative queue", webhook.Config{URL: "http://x", Secret: secret, QueueLen: -1}, false},
		{"negative linger", webhook.Config{URL: "http://x", Secret: secret, Linger: -1}, false},
		{"max below min", webhook.Config{URL: "http://x", Secret: secret, RetryMin: time.Second, RetryMax: time.Millisecond}, false},
	}
	for _, tc := range cases {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v", tc.name, err)
		}
	}
}
