package main

// The audit client set of the cluster process tests (cluster_*_test.go): devices that send,
// resend what is not acknowledged, reconnect where the dispatcher says, and record what they
// see, so that a test can check that nothing acknowledged is lost. The cluster itself (the
// roles as processes of the race-built binary, binPath, see TestMain) is clustertest.Cluster.

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"imgate/cluster/clustertest"
)

// audit is a set of devices (WebSocket clients) that records, per sender, the msgId each
// clientMsgId was acknowledged with and, per device, every delivered msgId with its seq. A
// message not acknowledged is sent again with the same clientMsgId (after ERROR unavailable,
// after a reconnect, or after resendAfter without an answer), as the protocol asks. A device
// whose connection fails reconnects (to pick's answer) with its cursor, the highest seq it saw.
type audit struct {
	t           *testing.T
	pick        func(user string) (string, error) // where to reconnect; nil: the same URL
	resendAfter time.Duration

	mu          sync.Mutex
	devs        []*auditDevice
	msgs        map[string]*auditMsg // sender + "\x00" + clientMsgId
	pending     map[*auditMsg]struct{}
	resends     int
	unavailable int
	rateLimited int
	failures    []string // protocol violations
	closed      bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// auditMsg is one content message and what became of it.
type auditMsg struct {
	from               *auditDevice
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

// auditDevice is one connection of a user, reconnected as needed.
type auditDevice struct {
	a          *audit
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
	replays    []auditReplay   // per connection: what came before its init ACK
	reconnects int
	sent       int
	closed     bool
}

// auditReplay is what one connection got before its CONNECT_INIT was acknowledged.
type auditReplay struct {
	cursor int64   // sent in CONNECT_INIT
	ack    int64   // chatMsg.seq of the init ACK (-1 before it)
	seqs   []int64 // new seqs received before the init ACK (replayed or live)
}

type auditEnvelope struct {
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

func newAudit(t *testing.T, pick func(user string) (string, error)) *audit {
	a := &audit{t: t, pick: pick, resendAfter: 3 * time.Second, msgs: map[string]*auditMsg{},
		pending: map[*auditMsg]struct{}{}, stop: make(chan struct{})}
	a.wg.Add(1)
	go a.resender()
	t.Cleanup(a.close)
	return a
}

// pickFrom makes an audit's pick function from a cluster's dispatcher.
func pickFrom(c *clustertest.Cluster) func(string) (string, error) {
	return func(user string) (string, error) {
		n, err := c.Pick(user)
		return n.WSURL, err
	}
}

func (a *audit) close() {
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

func (a *audit) fail(format string, args ...any) {
	a.failures = append(a.failures, fmt.Sprintf(format, args...))
}

// device connects a new device of user to url (cursor 0) and waits for its init ACK.
func (a *audit) device(user, name, url string) *auditDevice {
	a.t.Helper()
	d := &auditDevice{a: a, user: user, name: name, seen: map[string]int64{}, receipts: map[string]int{}}
	a.mu.Lock()
	a.devs = append(a.devs, d)
	a.mu.Unlock()
	if err := d.connect(url); err != nil {
		a.t.Fatalf("device %s/%s: %v", user, name, err)
	}
	return d
}

// resendBurst bounds the resends of one device per 50 ms tick (60/s).
const resendBurst = 3

// resender sends unacknowledged messages again, and pings idle connections.
func (a *audit) resender() {
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
			d    *auditDevice
			conn *websocket.Conn
			m    *auditMsg
		}
		var jobs []job
		var pings []job
		a.mu.Lock()
		var due []*auditMsg
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
		// Oldest first, at most resendBurst per device and tick: a device never
		// approaches the node's rate limit, however many messages wait.
		slices.SortFunc(due, func(x, y *auditMsg) int { return x.first.Compare(y.first) })
		perDev := map[*auditDevice]int{}
		for _, m := range due {
			d := m.from
			if perDev[d] >= resendBurst {
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
func (a *audit) steady(dur time.Duration, perSec int, senders []*auditDevice, to func(*auditDevice) string) <-chan struct{} {
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
