package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"imgate/message"
	"imgate/saver"
)

func testSeqsGapFree(t *testing.T, f *fixture) {
	type msg struct{ from, to string }
	batches := []struct {
		name string
		msgs []msg
	}{
		{name: "single", msgs: []msg{{"a", "b"}}},
		{name: "both directions", msgs: []msg{{"a", "b"}, {"b", "a"}, {"a", "b"}}},
		{name: "third user", msgs: []msg{{"c", "a"}, {"b", "c"}, {"c", "c"}, {"a", "b"}}},
		{name: "many to one", msgs: []msg{{"a", "d"}, {"b", "d"}, {"c", "d"}, {"d", "d"}}},
	}
	want := map[string]int64{} // user → last seq so far
	for _, b := range batches {
		var recs []message.Record
		for _, m := range b.msgs {
			recs = append(recs, rec(m.from, m.to, b.name, ""))
		}
		out := f.save(t, recs...)
		for i, s := range out {
			m := b.msgs[i]
			want[m.to]++
			if s.ReceiverSeq != want[m.to] {
				t.Errorf("%s: message %d: ReceiverSeq %d, want %d", b.name, i, s.ReceiverSeq, want[m.to])
			}
			if m.from != m.to {
				want[m.from]++
			}
			if s.SenderSeq != want[m.from] {
				t.Errorf("%s: message %d: SenderSeq %d, want %d", b.name, i, s.SenderSeq, want[m.from])
			}
			if s.Duplicate {
				t.Errorf("%s: message %d: Duplicate on first save", b.name, i)
			}
		}
	}
	for user, last := range want {
		if got := seqs(t, f.replay(t, user, 0, 1000)); !equalSeqs(got, seqRange(1, last)) {
			t.Errorf("inbox %q seqs %v, want 1..%d", user, got, last)
		}
		if got := f.lastSeq(t, user); got != last {
			t.Errorf("LastSeq(%q) = %d, want %d", user, got, last)
		}
	}
}

func testBothInboxes(t *testing.T, f *fixture) {
	tests := []struct {
		name             string
		sender, receiver string
		wantRows         map[string]int // inbox rows per user after the save
	}{
		{name: "to another user", sender: "alice", receiver: "bob", wantRows: map[string]int{"alice": 1, "bob": 1}},
		{name: "to oneself", sender: "carol", receiver: "carol", wantRows: map[string]int{"carol": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rec(tc.sender, tc.receiver, "hi", "")
			s := f.save(t, r)[0]
			if tc.sender == tc.receiver && s.ReceiverSeq != s.SenderSeq {
				t.Errorf("self message: ReceiverSeq %d != SenderSeq %d", s.ReceiverSeq, s.SenderSeq)
			}
			for user, n := range tc.wantRows {
				es := f.replay(t, user, 0, 100)
				if len(es) != n {
					t.Fatalf("inbox %q has %d rows, want %d", user, len(es), n)
				}
				if err := sameMsg(es[0].Msg, r.Msg); err != nil {
					t.Errorf("inbox %q: %v", user, err)
				}
				if es[0].SenderConn != r.SenderConn {
					t.Errorf("inbox %q: SenderConn %d, want %d", user, es[0].SenderConn, r.SenderConn)
				}
				wantSeq := s.SenderSeq
				if user == tc.receiver {
					wantSeq = s.ReceiverSeq
				}
				if es[0].Seq != wantSeq {
					t.Errorf("inbox %q: seq %d, want %d", user, es[0].Seq, wantSeq)
				}
			}
		})
	}
}

func testIdempotency(t *testing.T, f *fixture) {
	// Each case saves first (one batch) then the batches in resend; the record at
	// index dupOf[i] of the flattened list is the one record i duplicates (-1: none).
	tests := []struct {
		name    string
		batches func() [][]message.Record
		dupOf   []int
	}{
		{
			name: "same msgId in a later batch",
			batches: func() [][]message.Record {
				a := rec("u1", "v1", "x", "")
				b := a
				b.SenderConn, b.Node = 2002, "im-0000000002"
				return [][]message.Record{{a}, {b}}
			},
			dupOf: []int{-1, 0},
		},
		{
			name: "same clientMsgId with a new msgId in a later batch",
			batches: func() [][]message.Record {
				a := rec("u2", "v2", "x", "c-1")
				b := rec("u2", "v2", "x again", "c-1")
				b.SenderConn, b.Node = 2002, "im-0000000002"
				return [][]message.Record{{a, rec("u2", "v2", "other", "c-2")}, {b}}
			},
			dupOf: []int{-1, -1, 0},
		},
		{
			name: "same msgId within one batch",
			batches: func() [][]message.Record {
				a := rec("u3", "v3", "x", "")
				b := a
				b.SenderConn = 2002
				return [][]message.Record{{a, rec("v3", "u3", "y", ""), b}}
			},
			dupOf: []int{-1, -1, 0},
		},
		{
			name: "same clientMsgId within one batch",
			batches: func() [][]message.Record {
				a := rec("u4", "v4", "x", "c-1")
				b := rec("u4", "v4", "x", "c-1")
				b.Node = "im-0000000009"
				return [][]message.Record{{a, b, rec("u4", "v4", "z", "c-3")}}
			},
			dupOf: []int{-1, 0, -1},
		},
		{
			name: "same clientMsgId from another sender is new",
			batches: func() [][]message.Record {
				return [][]message.Record{{rec("u5", "v5", "x", "c-1")}, {rec("v5", "u5", "x", "c-1")}}
			},
			dupOf: []int{-1, -1},
		},
		{
			name: "empty clientMsgId never matches",
			batches: func() [][]message.Record {
				return [][]message.Record{{rec("u6", "v6", "x", ""), rec("u6", "v6", "x", "")}, {rec("u6", "v6", "x", "")}}
			},
			dupOf: []int{-1, -1, -1},
		},
		{
			name: "resend to oneself",
			batches: func() [][]message.Record {
				a := rec("u7", "u7", "note", "c-1")
				b := rec("u7", "u7", "note", "c-1")
				return [][]message.Record{{a}, {b, b}}
			},
			dupOf: []int{-1, 0, 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var all []message.Record
			var got []message.Saved
			for _, b := range tc.batches() {
				all = append(all, b...)
				got = append(got, f.save(t, b...)...)
			}
			rows := map[string]int{}
			for i, s := range got {
				r := all[i]
				if j := tc.dupOf[i]; j >= 0 {
					first := got[j]
					// A client's resend (another msgId) is delivered to nobody; the same
					// msgId again is a redelivery of the record and is pushed again.
					if want := r.Msg.MsgID != first.Msg.MsgID; s.Duplicate != want {
						t.Errorf("record %d: Duplicate %v, want %v", i, s.Duplicate, want)
					}
					if err := sameMsg(s.Msg, first.Msg); err != nil {
						t.Errorf("record %d: not the first message: %v", i, err)
					}
					if s.ReceiverSeq != first.ReceiverSeq || s.SenderSeq != first.SenderSeq {
						t.Errorf("record %d: seqs %d/%d, want the first's %d/%d", i, s.ReceiverSeq, s.SenderSeq, first.ReceiverSeq, first.SenderSeq)
					}
					if s.SenderConn != r.SenderConn || s.Node != r.Node {
						t.Errorf("record %d: SenderConn/Node %d/%q, want the resend's %d/%q", i, s.SenderConn, s.Node, r.SenderConn, r.Node)
					}
					continue
				}
				if s.Duplicate {
					t.Errorf("record %d: Duplicate true, want false", i)
				}
				if err := sameMsg(s.Msg, r.Msg); err != nil {
					t.Errorf("record %d: %v", i, err)
				}
				rows[r.Msg.ReceiverID]++
				if r.Msg.SenderID != r.Msg.ReceiverID {
					rows[r.Msg.SenderID]++
				}
			}
			for user, n := range rows {
				es := f.replay(t, user, 0, 100)
				if !equalSeqs(seqs(t, es), seqRange(1, int64(n))) {
					t.Errorf("inbox %q seqs %v, want 1..%d (no row for a duplicate)", user, seqs(t, es), n)
				}
			}
		})
	}
}

func testReplay(t *testing.T, f *fixture) {
	var recs []message.Record
	for i := range 10 {
		recs = append(recs, rec("sam", "rita", fmt.Sprintf("m%d", i), ""))
	}
	f.save(t, recs[:3]...)
	f.save(t, recs[3:]...)
	tests := []struct {
		name     string
		afterSeq int64
		limit    int
		want     []int64
	}{
		{name: "all", afterSeq: 0, limit: 100, want: seqRange(1, 10)},
		{name: "limit", afterSeq: 0, limit: 4, want: seqRange(1, 4)},
		{name: "after cursor", afterSeq: 6, limit: 100, want: seqRange(7, 10)},
		{name: "after cursor with limit", afterSeq: 2, limit: 3, want: seqRange(3, 5)},
		{name: "at the end", afterSeq: 10, limit: 100, want: nil},
		{name: "past the end", afterSeq: 50, limit: 100, want: nil},
		{name: "negative cursor", afterSeq: -1, limit: 2, want: seqRange(1, 2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, user := range []string{"sam", "rita"} {
				es := f.replay(t, user, tc.afterSeq, tc.limit)
				if got := seqs(t, es); !equalSeqs(got, tc.want) {
					t.Fatalf("%s: seqs %v, want %v", user, got, tc.want)
				}
				for _, e := range es {
					if err := sameMsg(e.Msg, recs[e.Seq-1].Msg); err != nil {
						t.Errorf("%s seq %d: %v", user, e.Seq, err)
					}
				}
			}
		})
	}
	if got := f.replay(t, "nobody", 0, 10); len(got) != 0 {
		t.Errorf("empty inbox replayed %d entries", len(got))
	}
}

func testLastSeq(t *testing.T, f *fixture) {
	tests := []struct {
		name string
		save []message.Record
		user string
		want int64
	}{
		{name: "unknown user", user: "ghost", want: 0},
		{name: "receiver", save: []message.Record{rec("p", "q", "1", ""), rec("p", "q", "2", "")}, user: "q", want: 2},
		{name: "sender counts too", save: []message.Record{rec("q", "r", "3", "")}, user: "q", want: 3},
		{name: "self message once", save: []message.Record{rec("r", "r", "4", "")}, user: "r", want: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.save) > 0 {
				f.save(t, tc.save...)
			}
			if got := f.lastSeq(t, tc.user); got != tc.want {
				t.Errorf("LastSeq(%q) = %d, want %d", tc.user, got, tc.want)
			}
		})
	}
}

func testLastSeqs(t *testing.T, f *fixture) {
	f.save(t, rec("p", "q", "1", ""), rec("p", "q", "2", ""), rec("q", "r", "3", ""))
	users := []string{"q", "ghost", "p", "q", "r", "ghost"}
	got, err := f.s.LastSeqs(ctx(t), users)
	if err != nil {
		t.Fatalf("LastSeqs: %v", err)
	}
	want := []int64{3, 0, 2, 3, 1, 0}
	if !slices.Equal(got, want) {
		t.Errorf("LastSeqs(%q) = %v, want %v", users, got, want)
	}
	for i, u := range users {
		if n := f.lastSeq(t, u); n != want[i] {
			t.Errorf("LastSeq(%q) = %d, LastSeqs said %d", u, n, want[i])
		}
	}
	if got, err := f.s.LastSeqs(ctx(t), nil); err != nil || len(got) != 0 {
		t.Errorf("LastSeqs(nil) = %v, %v; want empty, nil", got, err)
	}
	many := make([]string, 1000)
	for i := range many {
		many[i] = fmt.Sprintf("many-%d", i)
	}
	many[500] = "q"
	got, err = f.s.LastSeqs(ctx(t), many)
	if err != nil || len(got) != len(many) || got[500] != 3 || got[0] != 0 || got[999] != 0 {
		t.Errorf("LastSeqs of 1,000 users: len %d, [0]=%v [500]=%v [999]=%v, err %v; want 0, 3, 0", len(got), at(got, 0), at(got, 500), at(got, 999), err)
	}
}

// at returns s[i], or -1 when s is shorter.
func at(s []int64, i int) int64 {
	if i < len(s) {
		return s[i]
	}
	return -1
}

func testHistory(t *testing.T, f *fixture) {
	// hana's inbox: seq 1 kai→hana, 2 hana→kai, 3 leo→hana, 4 hana→kai, 5 hana→hana, 6 leo→hana, 7 kai→hana
	f.save(t, rec("kai", "hana", "1", ""), rec("hana", "kai", "2", ""), rec("leo", "hana", "3", ""))
	f.save(t, rec("hana", "kai", "4", ""), rec("hana", "hana", "5", ""))
	f.save(t, rec("leo", "hana", "6", ""), rec("kai", "hana", "7", ""))
	tests := []struct {
		name      string
		user      string
		peer      string
		beforeSeq int64
		limit     int
		want      []int64
	}{
		{name: "all newest first", user: "hana", limit: 50, want: []int64{7, 6, 5, 4, 3, 2, 1}},
		{name: "limit", user: "hana", limit: 2, want: []int64{7, 6}},
		{name: "before", user: "hana", beforeSeq: 5, limit: 50, want: []int64{4, 3, 2, 1}},
		{name: "before with limit", user: "hana", beforeSeq: 7, limit: 3, want: []int64{6, 5, 4}},
		{name: "peer", user: "hana", peer: "kai", limit: 50, want: []int64{7, 4, 2, 1}},
		{name: "peer before", user: "hana", peer: "kai", beforeSeq: 4, limit: 50, want: []int64{2, 1}},
		{name: "peer limit", user: "hana", peer: "leo", limit: 1, want: []int64{6}},
		{name: "self as peer", user: "hana", peer: "hana", limit: 50, want: []int64{5}},
		{name: "peer from the other side", user: "kai", peer: "hana", limit: 50, want: []int64{4, 3, 2, 1}},
		{name: "unknown peer", user: "hana", peer: "zed", limit: 50, want: nil},
		{name: "before 1", user: "hana", beforeSeq: 1, limit: 50, want: nil},
		{name: "before past the end", user: "hana", beforeSeq: 100, limit: 2, want: []int64{7, 6}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es := f.history(t, tc.user, tc.peer, tc.beforeSeq, tc.limit)
			if got := seqs(t, es); !equalSeqs(got, tc.want) {
				t.Fatalf("seqs %v, want %v", got, tc.want)
			}
			for _, e := range es {
				if tc.peer != "" && e.Msg.SenderID != tc.peer && e.Msg.ReceiverID != tc.peer {
					t.Errorf("seq %d is %s→%s, not with %s", e.Seq, e.Msg.SenderID, e.Msg.ReceiverID, tc.peer)
				}
			}
		})
	}
}

func testContentPreserved(t *testing.T, f *fixture) {
	tests := []struct {
		name  string
		msg   string
		extra string
	}{
		{name: "plain", msg: "hello", extra: ""},
		{name: "emoji", msg: "héllo 👋🏽 👨‍👩‍👧‍👦 🇫🇷", extra: `"reaction":"🔥"`},
		{name: "cjk and rtl", msg: "你好，世界 — مرحبا بالعالم — שלום", extra: `"lang":"zh"`},
		{name: "extra byte-exact", msg: "img", extra: `"w":640,"h":480.50, "meta" : {"a":[1,2,{"b":null}]},"t":true`},
		{name: "extra with escapes", msg: `quote " and \ backslash`, extra: `"s":"\u0000\"\\\n\ud83d\ude00","n":-0.0e+10`},
		{name: "empty msg", msg: "", extra: `"x":1`},
		{name: "long", msg: strings.Repeat("ab😀", 10000), extra: `"big":"` + strings.Repeat("z", 20000) + `"`},
		{name: "sql-looking", msg: `'); DROP TABLE messages; --`, extra: `"q":"' OR 1=1 --"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rec("emo", "ji", tc.msg, "c-"+tc.name)
			if tc.extra != "" {
				r.Msg.Extra = []byte(tc.extra)
			}
			want := r.Msg
			want.Extra = append([]byte(nil), r.Msg.Extra...)
			s := f.save(t, r)[0]
			for i := range r.Msg.Extra { // the caller may reuse its buffer
				r.Msg.Extra[i] = 'X'
			}
			if err := sameMsg(s.Msg, want); err != nil {
				t.Errorf("Saved: %v", err)
			}
			for _, user := range []string{"emo", "ji"} {
				es := f.replay(t, user, s.ReceiverSeq-1, 1)
				if user == "emo" {
					es = f.replay(t, user, s.SenderSeq-1, 1)
				}
				if len(es) != 1 {
					t.Fatalf("%s: replay found %d entries", user, len(es))
				}
				if err := sameMsg(es[0].Msg, want); err != nil {
					t.Errorf("%s replay: %v", user, err)
				}
			}
			h := f.history(t, "ji", "emo", 0, 1)
			if len(h) != 1 {
				t.Fatalf("history found %d entries", len(h))
			}
			if err := sameMsg(h[0].Msg, want); err != nil {
				t.Errorf("history: %v", err)
			}
		})
	}
}

func testConcurrentSave(t *testing.T, f *fixture) {
	const (
		workers = 6
		batches = 15
		size    = 8
	)
	users := []string{"w0", "w1", "w2", "w3"}
	var (
		mu    sync.Mutex
		saved []message.Saved
		wg    sync.WaitGroup
		errs  = make(chan error, workers)
	)
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				var recs []message.Record
				for i := range size {
					n := w + b + i
					recs = append(recs, rec(users[n%len(users)], users[(n/len(users)+w)%len(users)], "c", fmt.Sprintf("w%d-b%d-%d", w, b, i)))
				}
				out, err := f.s.Save(ctx(t), recs)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				saved = append(saved, out...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Save: %v", err)
	}
	// Every message once in each inbox, at the seq Save reported; seqs 1..N.
	want := map[string]map[int64]int64{} // user → seq → msgId
	for _, s := range saved {
		if s.Duplicate {
			t.Fatalf("msgId %d reported Duplicate", s.Msg.MsgID)
		}
		for _, p := range []struct {
			user string
			seq  int64
		}{{s.Msg.ReceiverID, s.ReceiverSeq}, {s.Msg.SenderID, s.SenderSeq}} {
			if want[p.user] == nil {
				want[p.user] = map[int64]int64{}
			}
			if prev, ok := want[p.user][p.seq]; ok && prev != s.Msg.MsgID {
				t.Fatalf("%s seq %d given to msgIds %d and %d", p.user, p.seq, prev, s.Msg.MsgID)
			}
			want[p.user][p.seq] = s.Msg.MsgID
		}
	}
	for user, bySeq := range want {
		es := f.replay(t, user, 0, 10000)
		if !equalSeqs(seqs(t, es), seqRange(1, int64(len(bySeq)))) {
			t.Fatalf("inbox %q: seqs %v, want 1..%d", user, seqs(t, es), len(bySeq))
		}
		for _, e := range es {
			if bySeq[e.Seq] != e.Msg.MsgID {
				t.Errorf("inbox %q seq %d holds msgId %d, Save said %d", user, e.Seq, e.Msg.MsgID, bySeq[e.Seq])
			}
		}
	}
}

func testConcurrentResend(t *testing.T, f *fixture) {
	// The same clientMsgId saved from several goroutines (a client resending to two
	// nodes): exactly one is new, every answer carries its msgId.
	const workers = 6
	out := make([]message.Saved, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		r := rec("racer", "judge", "once", "same-key")
		r.Node = fmt.Sprintf("im-%010d", w)
		wg.Go(func() {
			var res []message.Saved
			res, errs[w] = f.s.Save(ctx(t), []message.Record{rec("filler", "judge", "f", ""), r})
			if errs[w] == nil {
				out[w] = res[1]
			}
		})
	}
	wg.Wait()
	fresh := 0
	for w := range workers {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		if !out[w].Duplicate {
			fresh++
		}
		if out[w].Msg.MsgID != out[0].Msg.MsgID || out[w].ReceiverSeq != out[0].ReceiverSeq {
			t.Errorf("worker %d got msgId %d seq %d, worker 0 got %d seq %d", w, out[w].Msg.MsgID, out[w].ReceiverSeq, out[0].Msg.MsgID, out[0].ReceiverSeq)
		}
		if out[w].Node != fmt.Sprintf("im-%010d", w) {
			t.Errorf("worker %d: Node %q is not the resend's", w, out[w].Node)
		}
	}
	if fresh != 1 {
		t.Errorf("%d saves stored the message, want 1", fresh)
	}
	if got := f.lastSeq(t, "racer"); got != 1 {
		t.Errorf("sender inbox has last seq %d, want 1", got)
	}
	if got := f.lastSeq(t, "judge"); got != workers+1 {
		t.Errorf("receiver inbox has last seq %d, want %d", got, workers+1)
	}
}

func testInvalidBatch(t *testing.T, f *fixture) {
	tests := []struct {
		name   string
		mutate func(r *message.Record)
	}{
		{name: "no msgId", mutate: func(r *message.Record) { r.Msg.MsgID = 0 }},
		{name: "no sender", mutate: func(r *message.Record) { r.Msg.SenderID = "" }},
		{name: "no receiver", mutate: func(r *message.Record) { r.Msg.ReceiverID = "" }},
		{name: "clientMsgId too long", mutate: func(r *message.Record) { r.Msg.ClientMsgID = strings.Repeat("k", message.MaxClientMsgID+1) }},
		{name: "NUL in msg", mutate: func(r *message.Record) { r.Msg.Msg = "a\x00b" }},
		{name: "invalid UTF-8 in extra", mutate: func(r *message.Record) { r.Msg.Extra = []byte("\"k\":\"\xff\"") }},
		{name: "invalid UTF-8 in node", mutate: func(r *message.Record) { r.Node = "\xc3" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := rec("inv", "alid", "bad", "")
			tc.mutate(&bad)
			_, err := f.s.Save(ctx(t), []message.Record{rec("inv", "alid", "good", "c-ok"), bad})
			if !errors.Is(err, message.ErrInvalid) {
				t.Fatalf("Save = %v, want ErrInvalid", err)
			}
			for _, user := range []string{"inv", "alid"} {
				if n := f.lastSeq(t, user); n != 0 {
					t.Errorf("LastSeq(%q) = %d after a failed batch, want 0", user, n)
				}
			}
		})
	}
	if s := f.save(t, rec("inv", "alid", "good", "c-ok"))[0]; s.Duplicate || s.ReceiverSeq != 1 {
		t.Errorf("after failed batches: Duplicate %v ReceiverSeq %d, want a fresh seq 1", s.Duplicate, s.ReceiverSeq)
	}
}

func testInvalidLimit(t *testing.T, f *fixture) {
	c := ctx(t)
	if _, err := f.s.Replay(c, "u", 0, 0); !errors.Is(err, message.ErrInvalid) {
		t.Errorf("Replay limit 0 = %v, want ErrInvalid", err)
	}
	if _, err := f.s.History(c, "u", "", 0, -1); !errors.Is(err, message.ErrInvalid) {
		t.Errorf("History limit -1 = %v, want ErrInvalid", err)
	}
}

func testCanceledContext(t *testing.T, f *fixture) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.s.Save(c, []message.Record{rec("can", "celed", "x", "")}); err == nil {
		t.Fatal("Save with a canceled context succeeded")
	}
	if n := f.lastSeq(t, "celed"); n != 0 {
		t.Errorf("LastSeq = %d after a canceled Save, want 0", n)
	}
}

func testEmptyBatch(t *testing.T, f *fixture) {
	out, err := f.s.Save(ctx(t), nil)
	if err != nil || len(out) != 0 {
		t.Errorf("Save(nil) = %v, %v; want empty, nil", out, err)
	}
}

func testClosed(t *testing.T, f *fixture) {
	f.save(t, rec("x", "y", "before close", ""))
	if err := f.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c := ctx(t)
	if _, err := f.s.Save(c, []message.Record{rec("x", "y", "after", "")}); !errors.Is(err, saver.ErrClosed) {
		t.Errorf("Save after Close = %v, want ErrClosed", err)
	}
	if _, err := f.s.Replay(c, "y", 0, 10); !errors.Is(err, saver.ErrClosed) {
		t.Errorf("Replay after Close = %v, want ErrClosed", err)
	}
	if _, err := f.s.LastSeq(c, "y"); !errors.Is(err, saver.ErrClosed) {
		t.Errorf("LastSeq after Close = %v, want ErrClosed", err)
	}
	if _, err := f.s.LastSeqs(c, []string{"y"}); !errors.Is(err, saver.ErrClosed) {
		t.Errorf("LastSeqs after Close = %v, want ErrClosed", err)
	}
	if _, err := f.s.History(c, "y", "", 0, 10); !errors.Is(err, saver.ErrClosed) {
		t.Errorf("History after Close = %v, want ErrClosed", err)
	}
	if err := f.s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
