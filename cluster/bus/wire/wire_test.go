package wire

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
)

func TestRoundTrip(t *testing.T) {
	chat := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name string
		rec  message.Record
	}{
		{name: "full", rec: message.Record{
			Msg: codec.ChatMsg{SenderID: "alice", ReceiverID: "bob", Msg: "hi 👋 \"quoted\"\n", MsgType: codec.Image,
				MsgID: 7392012345678901234, ClientMsgID: "a-17", ChatTime: chat, Seq: 3,
				Extra: []byte(` "w": 640 ,"meta":{"a":[1, 2]}, "s":"x\u00e9"`)},
			SenderConn: 902, Node: "im-0000000003"}},
		{name: "minimal", rec: message.Record{Msg: codec.ChatMsg{SenderID: "a", ReceiverID: "a", MsgType: codec.Words}}},
		{name: "max id", rec: message.Record{Msg: codec.ChatMsg{MsgID: 1<<63 - 1, ChatTime: chat.In(time.FixedZone("x", 3600))}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := EncodeRecord(tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeRecord(b)
			if err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			checkRecord(t, got, tt.rec)

			sv := message.Saved{Record: tt.rec, ReceiverSeq: 9, SenderSeq: 11, Duplicate: true}
			b, err = EncodeSaved(sv)
			if err != nil {
				t.Fatal(err)
			}
			gs, err := DecodeSaved(b)
			if err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			checkRecord(t, gs.Record, tt.rec)
			if gs.ReceiverSeq != 9 || gs.SenderSeq != 11 || !gs.Duplicate {
				t.Errorf("saved fields = %d %d %v", gs.ReceiverSeq, gs.SenderSeq, gs.Duplicate)
			}
		})
	}
}

func checkRecord(t *testing.T, got, want message.Record) {
	t.Helper()
	if !bytes.Equal(got.Msg.Extra, want.Msg.Extra) {
		t.Errorf("extra = %q, want %q (byte-exact)", got.Msg.Extra, want.Msg.Extra)
	}
	if !got.Msg.ChatTime.Equal(want.Msg.ChatTime) {
		t.Errorf("chatTime = %v, want %v", got.Msg.ChatTime, want.Msg.ChatTime)
	}
	got.Msg.Extra, want.Msg.Extra = nil, nil
	got.Msg.ChatTime, want.Msg.ChatTime = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("record = %+v, want %+v", got, want)
	}
}

func TestFormat(t *testing.T) {
	b, err := EncodeRecord(message.Record{Msg: codec.ChatMsg{MsgID: 42, ChatTime: time.UnixMilli(0).UTC(), Extra: []byte(`"k":1`)}})
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"msgId":"42"`, `"chatTime":"1970-01-01T00:00:00Z"`, `"extra":{"k":1}}`} {
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %s", s, want)
		}
	}
	if _, err := EncodeRecord(message.Record{Msg: codec.ChatMsg{Extra: []byte(`"k":`)}}); err == nil {
		t.Error("invalid extra encoded")
	}
	for _, bad := range []string{`{`, `{"msgId":"x"}`, `{"chatTime":"yesterday"}`, `{"extra":[1]}`} {
		if _, err := DecodeSaved([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "wire: ") {
			t.Errorf("DecodeSaved(%s) err = %v", bad, err)
		}
	}
}
