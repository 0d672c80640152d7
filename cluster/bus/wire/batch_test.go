package wire

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
)

func sampleSaved(id int64, text string) message.Saved {
	return message.Saved{
		Record: message.Record{
			Msg: codec.ChatMsg{
				SenderID: "alice", ReceiverID: "bob", Msg: text, MsgType: codec.Words, MsgID: id,
				ClientMsgID: "c-1", ChatTime: time.UnixMilli(1_790_000_000_123).UTC(), Extra: []byte(`"w":640`),
			},
			SenderConn: 3<<48 | 17,
			Node:       "127.0.0.1_8875",
		},
		ReceiverSeq: 7, SenderSeq: 12,
	}
}

func TestBatchRoundTrip(t *testing.T) {
	dup := sampleSaved(3, "dup")
	dup.Duplicate = true
	bare := message.Saved{Record: message.Record{Msg: codec.ChatMsg{SenderID: "a", ReceiverID: "a", Msg: "x", MsgID: 4}}}
	in := []message.Saved{sampleSaved(1, "héllo 👋"), sampleSaved(2, ""), dup, bare}
	in[1].Msg.Msg = "second"
	for _, kind := range []Kind{Records, Saved, Live} {
		k, out, refused, err := Decode(Encode(kind, in))
		if err != nil || len(refused) != 0 {
			t.Fatalf("kind %c: err %v, refused %v", kind, err, refused)
		}
		if k != kind {
			t.Fatalf("kind %c decoded as %c", kind, k)
		}
		if !reflect.DeepEqual(out, in) {
			t.Fatalf("kind %c:\n got %+v\nwant %+v", kind, out, in)
		}
	}
}

func TestBatchEmpty(t *testing.T) {
	_, out, refused, err := Decode(Encode(Records, nil))
	if err != nil || len(out) != 0 || len(refused) != 0 {
		t.Fatalf("empty batch: %v %v %v", out, refused, err)
	}
}

// frame wraps raw record bytes as one framed record.
func frame(rec []byte) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(rec))), rec...)
}

// batchOf builds a batch from already framed records.
func batchOf(kind Kind, frames ...[]byte) []byte {
	b := binary.AppendUvarint([]byte{batchVersion, byte(kind)}, uint64(len(frames)))
	for _, f := range frames {
		b = append(b, f...)
	}
	return b
}

// recordBytes is the frame content of one encoded record.
func recordBytes(s message.Saved) []byte {
	e := NewEncoder(Records)
	e.Add(&s)
	_, n := binary.Uvarint(e.buf)
	return e.buf[n:]
}

func TestBatchRefusesOneBadRecordKeepsTheOthers(t *testing.T) {
	good1, good2 := sampleSaved(10, "one"), sampleSaved(12, "two")
	badUTF8 := sampleSaved(11, "\xff\xfe")
	noSender := sampleSaved(13, "x")
	noSender.Msg.SenderID = ""
	truncated := recordBytes(sampleSaved(14, "cut"))
	truncated = truncated[:len(truncated)-3] // the last field overruns the frame
	trailing := append(recordBytes(sampleSaved(15, "tail")), 0)
	b := batchOf(Records, frame(recordBytes(good1)), frame(recordBytes(badUTF8)), frame(truncated),
		frame(recordBytes(noSender)), frame(trailing), frame(recordBytes(good2)))
	_, out, refused, err := Decode(b)
	if err != nil {
		t.Fatalf("batch error: %v", err)
	}
	if len(out) != 2 || out[0].Msg.MsgID != 10 || out[1].Msg.MsgID != 12 {
		t.Fatalf("kept %+v, want msgIds 10 and 12", out)
	}
	if len(refused) != 4 {
		t.Fatalf("refused %d records, want 4: %v", len(refused), refused)
	}
	for _, e := range refused {
		if !errors.Is(e, ErrBatch) {
			t.Errorf("refusal %v does not wrap ErrBatch", e)
		}
	}
	if !errors.Is(refused[0], message.ErrInvalid) || !errors.Is(refused[2], message.ErrInvalid) {
		t.Errorf("invalid records should wrap message.ErrInvalid: %v, %v", refused[0], refused[2])
	}
}

func TestBatchBrokenFrameKeepsWhatCameBefore(t *testing.T) {
	good := frame(recordBytes(sampleSaved(20, "ok")))
	broken := append(binary.AppendUvarint(nil, 1<<20), 1, 2, 3) // claims 1 MiB, holds 3 bytes
	_, out, _, err := Decode(batchOf(Saved, good, broken, good))
	if !errors.Is(err, ErrBatch) {
		t.Fatalf("err %v, want ErrBatch", err)
	}
	if len(out) != 1 || out[0].Msg.MsgID != 20 {
		t.Fatalf("kept %+v, want the record before the broken frame", out)
	}
}

func TestBatchRefusesUnknownHeader(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version 2": {2, byte(Records), 0},
		"kind":      {batchVersion, 'X', 0},
		"no count":  {batchVersion, byte(Records)},
	} {
		if _, out, _, err := Decode(b); !errors.Is(err, ErrBatch) || len(out) != 0 {
			t.Errorf("%s: out %v err %v, want ErrBatch and nothing", name, out, err)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(Encode(Saved, []message.Saved{sampleSaved(1, "a"), sampleSaved(2, "b")}))
	f.Add([]byte{batchVersion, byte(Records), 1, 3, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, out, _, err := Decode(b)
		if err == nil {
			// What decodes cleanly encodes back to something that decodes the same.
			_, again, refused, err2 := Decode(Encode(kind, out))
			if err2 != nil || len(refused) != 0 || len(again) != len(out) {
				t.Fatalf("re-encode: %d → %d records, refused %v, err %v", len(out), len(again), refused, err2)
			}
		}
	})
}

func TestBatchGroupRecordsRoundTrip(t *testing.T) {
	group := sampleSaved(10, "to the group")
	group.Msg.ReceiverID, group.Msg.GroupID, group.ReceiverSeq = "", "team", 0
	group.Members = []message.MemberSeq{{User: "alice", Seq: 12}, {User: "bob", Seq: 3}, {User: "carol", Seq: 1 << 40}}
	forbidden := sampleSaved(11, "not a member")
	forbidden.Msg.ReceiverID, forbidden.Msg.GroupID, forbidden.Forbidden = "", "team", true
	api := sampleSaved(12, "from the API")
	api.Server = true
	bcast := sampleSaved(13, "everyone")
	bcast.Msg.ReceiverID, bcast.Broadcast = "", true
	in := []message.Saved{group, forbidden, api, bcast, sampleSaved(14, "plain")}
	_, out, refused, err := Decode(Encode(Saved, in))
	if err != nil || len(refused) > 0 {
		t.Fatalf("Decode: err %v, refused %v", err, refused)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
	}
}
