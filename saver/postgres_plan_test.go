package saver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPostgresSaveQueriesUseIndexes keeps the statements of Save (and the newest-seq read of
// binding devices) on indexes on a table
// whose statistics are stale (grown since the schema was made, never analysed: a fresh
// deployment, or autovacuum off) and for a batch of a few hundred records. A plan that
// scans the messages table makes every batch slower as the table grows; seen: cluster
// throughput falling from 3,300 to 1,300 msgs/s over three 5 s runs (an OR of both
// duplicate conditions), and a saver falling behind for good at 2,000 msg/s (a merge join
// of the keys over a sorted scan of the whole table: slower saves, bigger batches, an
// even better-looking scan).
func TestPostgresSaveQueriesUseIndexes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, c, schema := openPlanStore(ctx, t)
	const rows, keys = 30000, 500
	if _, err := c.Exec(ctx, fmt.Sprintf(`INSERT INTO %[1]s.messages (msg_id, sender_id, receiver_id, msg_type, msg,
		client_msg_id, chat_time_ms, receiver_seq, sender_seq)
		SELECT g, 'u' || (g %% 300), 'u' || ((g + 1) %% 300), 1, 'hello', 'c' || g, 0, g, g FROM generate_series(1, %[2]d) g;
		INSERT INTO %[1]s.inbox_heads (user_id, last_seq) SELECT 'u' || g, 0 FROM generate_series(0, %[2]d) g`, schema, rows)); err != nil {
		t.Fatal(err)
	}
	var ids, senders, clientIDs, users, counts []string
	for i := range keys {
		n := 1 + i*(rows/keys)
		ids = append(ids, fmt.Sprint(n))
		senders = append(senders, fmt.Sprintf("u%d", n%300))
		clientIDs = append(clientIDs, fmt.Sprintf("c%d", n))
	}
	for i := range 300 {
		users = append(users, fmt.Sprintf("u%03d", i))
		counts = append(counts, "1")
	}
	arr := func(v []string) string { return "'{" + strings.Join(v, ",") + "}'" }
	q := newPGQueries(schema)
	for _, tc := range []struct{ name, stmt, args, table string }{
		{"duplicate lookup", q.findDups, arr(ids) + ", " + arr(senders) + ", " + arr(clientIDs), "messages"},
		{"head bump", q.bumpHeads, arr(users) + ", " + arr(counts), "inbox_heads"},
		{"newest seqs of binding devices", q.lastSeqs, arr(users), "inbox_heads"},
	} {
		// EXPLAIN of a PREPAREd statement executed with literal arguments: the plan the
		// saver's first executions get (custom plans, from the table's current size).
		if _, err := c.Exec(ctx, "DEALLOCATE ALL"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "PREPARE p AS "+tc.stmt); err != nil {
			t.Fatalf("%s: prepare: %v", tc.name, err)
		}
		plan := explain(ctx, t, c, "EXPLAIN EXECUTE p("+tc.args+")")
		if strings.Contains(plan, "Seq Scan on "+tc.table) || strings.Contains(plan, "Merge Join") {
			t.Errorf("the %s scans %s (%d rows, statistics stale, %d keys):\n%s", tc.name, tc.table, rows, keys, plan)
		}
	}
}

func explain(ctx context.Context, t *testing.T, c *pgx.Conn, query string) string {
	t.Helper()
	rows, err := c.Query(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan.String()
}

// TestPostgresSessionsEndIdleTransactions: the store's sessions tell PostgreSQL to end a
// transaction left idle by its client (a saver hung between two round trips would
// otherwise keep its inbox-head locks while a standby saver waits on them).
func TestPostgresSessionsEndIdleTransactions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, _, _ := openPlanStore(ctx, t)
	c, err := st.pool.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.pool.release(c)
	var v string
	if err := c.QueryRow(ctx, "SHOW idle_in_transaction_session_timeout").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "5s" {
		t.Errorf("idle_in_transaction_session_timeout = %q on a store session, want 5s", v)
	}
}

// openPlanStore opens a store on a new schema and a plain connection to the same
// database; both are closed and the schema dropped at the end of the test.
func openPlanStore(ctx context.Context, t *testing.T) (*Postgres, *pgx.Conn, string) {
	t.Helper()
	dsn := os.Getenv("IMGATE_TEST_PG")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "imgate_test_" + hex.EncodeToString(b[:])
	st, err := OpenPostgres(ctx, PostgresConfig{DSN: dsn, Schema: schema})
	if err != nil {
		t.Fatalf("OpenPostgres: %v (is PostgreSQL up? run scripts/services.sh up)", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		_ = c.Close(context.Background())
	})
	return st, c, schema
}
