package codec

import (
	"testing"
	"time"
)

const benchEnvelope = `{"chatMsg":{"senderId":"alice","receiverId":"bob","msg":"hello, how are you today?","msgType":1,"clientMsgId":"a-17","media":{"w":640,"h":480}},"extend":"c-9f2a"}`

func BenchmarkParserSmallText(b *testing.B) {
	frame := text(true, benchEnvelope)
	buf := make([]byte, len(frame))
	var p Parser
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, frame)
		if _, n, err := p.Next(buf); err != nil || n != len(buf) {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	src := []byte(benchEnvelope)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEnvelope(src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendEnvelope(b *testing.B) {
	e, err := DecodeEnvelope([]byte(benchEnvelope))
	if err != nil {
		b.Fatal(err)
	}
	e.ChatMsg.MsgID = 7392012345678901234
	e.ChatMsg.ChatTime = time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC)
	e.ChatMsg.Seq = 42
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendEnvelope(dst[:0], e)
	}
	b.SetBytes(int64(len(dst)))
}
