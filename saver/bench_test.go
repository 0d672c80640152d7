package saver_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"imgate/codec"
	"imgate/message"
	"imgate/saver"
)

// benchSave saves b.N batches of size records among 1000 users and reports msgs/s.
func benchSave(b *testing.B, s saver.Store, size int) {
	ctx := context.Background()
	id := int64(0)
	recs := make([]message.Record, size)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		for i := range recs {
			id++
			recs[i] = message.Record{
				Msg: codec.ChatMsg{
					SenderID: fmt.Sprintf("user-%d", id%1000), ReceiverID: fmt.Sprintf("user-%d", (id*7+3)%1000),
					Msg: "hello, this is a typical short chat message 👋", MsgType: codec.Words, MsgID: id,
					ClientMsgID: fmt.Sprintf("c-%d", id), ChatTime: time.Now(), Extra: []byte(`"w":640,"h":480`),
				},
				SenderConn: 902, Node: "im-0000000001",
			}
		}
		if _, err := s.Save(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "msgs/s")
}

func BenchmarkSQLiteSave(b *testing.B) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		for _, size := range []int{1, 256} {
			b.Run(fmt.Sprintf("sync=%s/batch=%d", sync, size), func(b *testing.B) {
				benchSave(b, openSQLite(b, filepath.Join(b.TempDir(), "bench.db"), sync), size)
			})
		}
	}
}

func BenchmarkPostgresSave(b *testing.B) {
	for _, size := range []int{1, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			benchSave(b, openPostgres(b, pgSchema(b)), size)
		})
	}
}

func BenchmarkMemorySave(b *testing.B) {
	b.Run("batch=256", func(b *testing.B) { benchSave(b, saver.NewMemory(), 256) })
}
