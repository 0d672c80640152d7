package saver_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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

// BenchmarkPostgresGroupSave saves one group message per transaction to groups of 10,
// 500 and 5,000 members (each message enters every member's inbox): the per-member
// inbox's write cost. It reports group messages/s, inbox rows/s and the table and index
// bytes the schema grew per message.
func BenchmarkPostgresGroupSave(b *testing.B) {
	for _, size := range []int{10, 500, 5000} {
		b.Run(fmt.Sprintf("members=%d", size), func(b *testing.B) {
			schema := pgSchema(b)
			s := openPostgres(b, schema)
			ctx := context.Background()
			members := make([]string, size)
			for i := range members {
				members[i] = fmt.Sprintf("member-%05d", i)
			}
			if _, err := s.PutGroup(ctx, "g", members); err != nil {
				b.Fatal(err)
			}
			conn, err := pgx.Connect(ctx, pgDSN())
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = conn.Close(ctx) }()
			bytes := func() int64 {
				var n int64
				err := conn.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
					JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = $1 AND c.relkind = 'r'`, schema).Scan(&n)
				if err != nil {
					b.Fatal(err)
				}
				return n
			}
			before := bytes()
			id := int64(0)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				id++
				rec := message.Record{
					Msg: codec.ChatMsg{SenderID: members[id%int64(size)], GroupID: "g", Msg: "hello, this is a typical short chat message 👋",
						MsgType: codec.Words, MsgID: id, ChatTime: time.Now()},
					SenderConn: 902, Node: "im-0000000001",
				}
				if _, err := s.Save(ctx, []message.Record{rec}); err != nil {
					b.Fatal(err)
				}
			}
			el := time.Since(start).Seconds()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el, "msgs/s")
			b.ReportMetric(float64(b.N*size)/el, "rows/s")
			b.ReportMetric(float64(bytes()-before)/float64(b.N), "bytes/msg")
		})
	}
}

// benchNewestSeqs reads the newest seqs of n users per call among 1,000 users with
// inboxes (what a replay worker does for a batch of CONNECT_INITs) and reports users/s.
func benchNewestSeqs(b *testing.B, s saver.Store, n int) {
	ctx := context.Background()
	benchSave(&testing.B{N: 4}, s, 256) // 1,024 messages among the 1,000 users
	users := make([]string, n)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for k := range users {
			users[k] = fmt.Sprintf("user-%d", (i*n+k)%1000)
		}
		var err error
		if n == 1 {
			_, err = s.LastSeq(ctx, users[0])
		} else {
			_, err = s.LastSeqs(ctx, users)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "users/s")
}

func BenchmarkNewestSeqs(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("sqlite/users=%d", n), func(b *testing.B) {
			benchNewestSeqs(b, openSQLite(b, filepath.Join(b.TempDir(), "bench.db"), "FULL"), n)
		})
		b.Run(fmt.Sprintf("postgres/users=%d", n), func(b *testing.B) {
			benchNewestSeqs(b, openPostgres(b, pgSchema(b)), n)
		})
	}
}
