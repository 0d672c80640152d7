package saver_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"imgate/codec"
	"imgate/message"
	"imgate/saver"
	"imgate/saver/storetest"
)

// pgDSN is the test PostgreSQL: IMGATE_TEST_PG or the local default.
func pgDSN() string {
	if dsn := os.Getenv("IMGATE_TEST_PG"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// pgSchema returns a fresh schema name, dropped when the test ends. The test fails
// (never skips) when PostgreSQL does not answer.
func pgSchema(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pgDSN())
	if err != nil {
		t.Fatalf("PostgreSQL at %s does not answer (%v): run scripts/services.sh up, or set IMGATE_TEST_PG", pgDSN(), err)
	}
	_ = c.Close(ctx)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "imgate_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, pgDSN())
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

func openPostgres(t testing.TB, schema string) *saver.Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := saver.OpenPostgres(ctx, saver.PostgresConfig{DSN: pgDSN(), Schema: schema})
	if err != nil {
		t.Fatalf("OpenPostgres: %v (is PostgreSQL up? run scripts/services.sh up)", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) saver.Store { return openPostgres(t, pgSchema(t)) })
}

func TestPostgresConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     saver.PostgresConfig
		wantErr bool
	}{
		{name: "defaults", cfg: saver.PostgresConfig{DSN: "postgres://x@h/db"}},
		{name: "schema", cfg: saver.PostgresConfig{DSN: "postgres://x@h/db", Schema: "imgate_2"}},
		{name: "no dsn", cfg: saver.PostgresConfig{}, wantErr: true},
		{name: "quoted schema", cfg: saver.PostgresConfig{DSN: "postgres://x@h/db", Schema: `a"; DROP`}, wantErr: true},
		{name: "schema starts with digit", cfg: saver.PostgresConfig{DSN: "postgres://x@h/db", Schema: "1abc"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
}

// TestPostgresTwoSavers runs two stores (two pools, as two saver processes would) that
// open the same fresh schema together and save concurrently to the same users. Every
// inbox must be 1..N without gaps or duplicates, every message in both inboxes, and a
// reader polling meanwhile must never see a hole (seq order is commit order).
func TestPostgresTwoSavers(t *testing.T) {
	schema := pgSchema(t)
	var stores [2]*saver.Postgres
	var wg sync.WaitGroup
	for i := range stores { // both migrate the fresh schema at the same time
		wg.Go(func() { stores[i] = openPostgres(t, schema) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	users := []string{"u0", "u1", "u2", "u3", "u4"}
	const (
		workersPerStore = 3
		batches         = 20
		size            = 16
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var (
		mu       sync.Mutex
		saved    []message.Saved
		nextID   = int64(1_000_000)
		readErr  = make(chan error, 1)
		stopRead = make(chan struct{})
		readDone = make(chan struct{})
	)
	go func() { // the reader
		defer close(readDone)
		for {
			select {
			case <-stopRead:
				return
			default:
			}
			for _, u := range users {
				es, err := stores[1].Replay(ctx, u, 0, 100000)
				if err == nil {
					for i, e := range es {
						if e.Seq != int64(i+1) {
							err = fmt.Errorf("reader saw %s seqs with a hole: position %d has seq %d", u, i, e.Seq)
							break
						}
					}
				}
				if err != nil {
					readErr <- err
					return
				}
			}
		}
	}()
	var saveWG sync.WaitGroup
	errs := make(chan error, 2*workersPerStore)
	for si := range stores {
		for w := range workersPerStore {
			saveWG.Go(func() {
				last := map[string]int64{}
				for b := range batches {
					recs := make([]message.Record, size)
					mu.Lock()
					for i := range recs {
						nextID++
						n := int(nextID)
						recs[i] = message.Record{
							Msg: codec.ChatMsg{
								SenderID: users[n%len(users)], ReceiverID: users[(n/len(users)+si)%len(users)],
								Msg: "x", MsgType: codec.Words, MsgID: nextID, ClientMsgID: fmt.Sprintf("s%d-w%d-b%d-%d", si, w, b, i),
								ChatTime: time.Now(),
							},
							Node: fmt.Sprintf("im-%d", si),
						}
					}
					mu.Unlock()
					out, err := stores[si].Save(ctx, recs)
					if err != nil {
						errs <- err
						return
					}
					for _, s := range out {
						// This worker's own batches commit one after another, so its
						// seqs per user increase.
						for _, p := range [][2]any{{s.Msg.ReceiverID, s.ReceiverSeq}, {s.Msg.SenderID, s.SenderSeq}} {
							u, seq := p[0].(string), p[1].(int64)
							if seq < last[u] || (seq == last[u] && s.Msg.SenderID != s.Msg.ReceiverID) {
								errs <- fmt.Errorf("store %d worker %d: %s seq %d after %d", si, w, u, seq, last[u])
								return
							}
							last[u] = seq
						}
					}
					mu.Lock()
					saved = append(saved, out...)
					mu.Unlock()
				}
			})
		}
	}
	saveWG.Wait()
	close(stopRead)
	<-readDone
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		t.Fatal(err)
	default:
	}

	want := map[string]map[int64]int64{}
	for _, s := range saved {
		for _, p := range []struct {
			u   string
			seq int64
		}{{s.Msg.ReceiverID, s.ReceiverSeq}, {s.Msg.SenderID, s.SenderSeq}} {
			if want[p.u] == nil {
				want[p.u] = map[int64]int64{}
			}
			if prev, ok := want[p.u][p.seq]; ok && prev != s.Msg.MsgID {
				t.Fatalf("%s seq %d given to msgIds %d and %d", p.u, p.seq, prev, s.Msg.MsgID)
			}
			want[p.u][p.seq] = s.Msg.MsgID
		}
	}
	total := 0
	for _, u := range users {
		es, err := stores[0].Replay(ctx, u, 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		total += len(es)
		if len(es) != len(want[u]) {
			t.Errorf("%s: %d inbox rows, Save reported %d", u, len(es), len(want[u]))
		}
		for i, e := range es {
			if e.Seq != int64(i+1) {
				t.Fatalf("%s: position %d has seq %d: not gap-free", u, i, e.Seq)
			}
			if want[u][e.Seq] != e.Msg.MsgID {
				t.Errorf("%s seq %d holds msgId %d, Save said %d", u, e.Seq, e.Msg.MsgID, want[u][e.Seq])
			}
		}
		if last, err := stores[1].LastSeq(ctx, u); err != nil || last != int64(len(es)) {
			t.Errorf("%s: LastSeq %d, %v; want %d", u, last, err, len(es))
		}
	}
	if len(saved) != 2*workersPerStore*batches*size {
		t.Errorf("%d messages saved, want %d", len(saved), 2*workersPerStore*batches*size)
	}
	t.Logf("%d messages, %d inbox rows across %d users", len(saved), total, len(users))
}

// TestPostgresSameMsgIDRace saves the same msgId from two stores in batches with no
// user in common (so no head lock orders them): the loser's insert meets the winner's
// row, its transaction is retried and it answers Duplicate with the winner's message.
func TestPostgresSameMsgIDRace(t *testing.T) {
	schema := pgSchema(t)
	a, b := openPostgres(t, schema), openPostgres(t, schema)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for round := range 20 {
		id := int64(5_000_000 + round)
		var out [2]message.Saved
		var errs [2]error
		var wg sync.WaitGroup
		for i, st := range []*saver.Postgres{a, b} {
			r := message.Record{Msg: codec.ChatMsg{
				SenderID: fmt.Sprintf("r%d-s%d", round, i), ReceiverID: fmt.Sprintf("r%d-t%d", round, i),
				Msg: "race", MsgType: codec.Words, MsgID: id,
			}}
			wg.Go(func() {
				var res []message.Saved
				res, errs[i] = st.Save(ctx, []message.Record{r})
				if errs[i] == nil {
					out[i] = res[0]
				}
			})
		}
		wg.Wait()
		for i := range errs {
			if errs[i] != nil {
				t.Fatalf("round %d store %d: %v", round, i, errs[i])
			}
		}
		// Same msgId: the loser gets the winner's record back (not a client's resend, so
		// not Duplicate); exactly one record is stored.
		if out[0].Msg.SenderID != out[1].Msg.SenderID {
			t.Fatalf("round %d: answers name senders %q and %q, want the winner's twice", round, out[0].Msg.SenderID, out[1].Msg.SenderID)
		}
		loser := out[0].Msg.SenderID == fmt.Sprintf("r%d-s0", round) // store 0 won: store 1 lost
		l := 0
		if loser {
			l = 1
		}
		if n, err := a.LastSeq(ctx, fmt.Sprintf("r%d-s%d", round, l)); err != nil || n != 0 {
			t.Fatalf("round %d: the loser's sender inbox has last seq %d (%v), want 0", round, n, err)
		}
	}
}
