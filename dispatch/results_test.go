package dispatch

import (
	"context"
	"errors"
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
)

// echoOutbox reports every submitted record to the Results it feeds, the way a store
// would: persisted, a resend answered with the first msgId, or failed.
type echoOutbox struct {
	r      *Results
	first  map[string]int64 // clientMsgId → first msgId
	fail   error
	silent bool
}

func (o *echoOutbox) Submit(rec message.Record) error {
	go func() {
		switch {
		case o.silent:
		case o.fail != nil:
			o.r.Failed([]message.Record{rec}, o.fail)
		default:
			sv := message.Saved{Record: rec, SenderSeq: 1}
			if id, ok := o.first[rec.Msg.ClientMsgID]; ok {
				sv.Msg.MsgID, sv.Duplicate = id, true
			} else if rec.Msg.ClientMsgID != "" {
				o.first[rec.Msg.ClientMsgID] = rec.Msg.MsgID
			}
			other := message.Saved{Record: message.Record{Msg: codec.ChatMsg{MsgID: rec.Msg.MsgID}, Node: "node-1"}}
			o.r.Saved([]message.Saved{other, sv})
		}
	}()
	return nil
}

type countSink struct{ saved, failed chan int }

func (c countSink) Saved(b []message.Saved)            { c.saved <- len(b) }
func (c countSink) Failed(r []message.Record, _ error) { c.failed <- len(r) }

func TestResultsAnswersTheWaitingSend(t *testing.T) {
	next := countSink{saved: make(chan int, 8), failed: make(chan int, 8)}
	r := NewResults("api", next)
	out := &echoOutbox{r: r, first: map[string]int64{}}
	rec := func(id int64, key string) message.Record {
		return message.Record{Msg: codec.ChatMsg{MsgID: id, SenderID: "system", ReceiverID: "bob", ClientMsgID: key}, Node: "api"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	sv, err := r.send(ctx, out, rec(1, "k"))
	if err != nil || sv.Msg.MsgID != 1 || sv.Duplicate {
		t.Fatalf("first send: %+v, %v", sv, err)
	}
	if n := <-next.saved; n != 2 {
		t.Fatalf("next got a batch of %d, want the whole batch of 2", n)
	}
	// A resend comes back under the first msgId: it still finds its request.
	sv, err = r.send(ctx, out, rec(2, "k"))
	if err != nil || sv.Msg.MsgID != 1 || !sv.Duplicate {
		t.Fatalf("resend: %+v, %v, want the first msgId", sv, err)
	}
	<-next.saved
	out.fail = errors.New("store down")
	if _, err = r.send(ctx, out, rec(3, "")); err == nil || err.Error() != "store down" {
		t.Fatalf("failed send: %v", err)
	}
	<-next.failed
	out.fail, out.silent = nil, true
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err = r.send(short, out, rec(4, "q")); !errors.Is(err, errNoResult) {
		t.Fatalf("unanswered send: %v, want errNoResult", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.byID) != 0 || len(r.byKey) != 0 {
		t.Fatalf("waiters left behind: %v %v", r.byID, r.byKey)
	}
}
