package saver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPostgresDuplicateLookupUsesIndexes keeps the duplicate lookup of Save on indexes: a
// plan that scans the messages table makes every batch slower as the table grows (seen:
// cluster throughput falling from 3,300 to 1,300 msgs/s over three 5 s runs).
func TestPostgresDuplicateLookupUsesIndexes(t *testing.T) {
	dsn := os.Getenv("IMGATE_TEST_PG")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "imgate_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := OpenPostgres(ctx, PostgresConfig{DSN: dsn, Schema: schema})
	if err != nil {
		t.Fatalf("OpenPostgres: %v (is PostgreSQL up? run scripts/services.sh up)", err)
	}
	defer func() { _ = st.Close() }()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_, _ = c.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		_ = c.Close(context.Background())
	}()
	if _, err := c.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "PREPARE dups(bigint[], text[], text[]) AS "+newPGQueries(schema).findDups); err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(ctx, `EXPLAIN EXECUTE dups('{1,2}', '{a}', '{k}')`)
	if err != nil {
		t.Fatal(err)
	}
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
	// The (sender_id, client_msg_id) lookup must be an index condition, not a filter
	// over a full scan of the table or of the index.
	if p := plan.String(); strings.Contains(p, "Seq Scan on messages") || !strings.Contains(p, "Index Cond: ((sender_id = ") {
		t.Fatalf("the duplicate lookup scans the messages table:\n%s", p)
	}
}
