package saver

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"imgate/message"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var _ Store = (*Postgres)(nil)

// PostgresConfig configures [OpenPostgres]. The zero value of every field but DSN means
// its documented default, which OpenPostgres applies.
type PostgresConfig struct {
	// DSN is a pgx connection string, URL or key=value
	// ("postgres://imgate@127.0.0.1:5432/imgate?sslmode=disable"). Required.
	DSN string
	// Schema holds the tables; it is created when missing. Default "imgate". It must be
	// a plain identifier: letters, digits and underscores, not starting with a digit.
	Schema string
	// MaxConns bounds the connections this store opens. Default 4.
	MaxConns int
	// MaxRetries is how many times Save retries a batch whose transaction failed with
	// a serialization failure (40001), a deadlock (40P01) or a connection error that is
	// safe to retry. Default 4.
	MaxRetries int
	// Logger receives open/migrate events and retried batches. Default: discard.
	Logger *slog.Logger
}

var pgIdentRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// withDefaults returns c with every zero field set to its default. It is the one place
// defaults are applied.
func (c PostgresConfig) withDefaults() PostgresConfig {
	if c.Schema == "" {
		c.Schema = "imgate"
	}
	if c.MaxConns == 0 {
		c.MaxConns = 4
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 4
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports a missing DSN, a bad schema name or negative sizes. Zero values of
// the other fields are valid: they mean their defaults. It does not change c.
func (c PostgresConfig) Validate() error {
	if c.DSN == "" {
		return fmt.Errorf("%w: postgres: dsn is empty", errInvalidConfig)
	}
	if c.Schema != "" && !pgIdentRE.MatchString(c.Schema) {
		return fmt.Errorf("%w: postgres: schema %q is not a plain identifier", errInvalidConfig, c.Schema)
	}
	if c.MaxConns < 0 || c.MaxRetries < 0 {
		return fmt.Errorf("%w: postgres: negative max conns or retries", errInvalidConfig)
	}
	return nil
}

// Postgres is a [Store] in PostgreSQL, for the clustered deployment: several saver
// processes may save into the same schema concurrently.
//
// A Save is one READ COMMITTED transaction: when none of its records was stored before,
// one round trip (BEGIN, the duplicate lookup, one statement that advances the inbox
// heads of every user the batch touches in sorted user_id order, so concurrent batches
// cannot deadlock, and inserts the messages and inbox rows, COMMIT); otherwise two
// (saveTwoTrips). The head rows are locked by the advance and held to commit, so a
// concurrent batch touching the same user waits and reads the committed head: seqs are
// gap-free and in commit order, and a reader never sees seq N+1 without seq N.
// It is safe for concurrent use.
type Postgres struct {
	pool   *pgPool
	log    *slog.Logger
	retry  int
	closed atomic.Bool
	q      pgQueries
}

// pgQueries is the SQL with the schema filled in.
type pgQueries struct {
	schema                                                    string // quoted
	bumpHeads, findDups, insMsgs, insInbox, setHeads, saveAll string
	replay, history, historyPeer, historyGroup, lastSeqs      string
	lastSeq                                                   string
	readGroups                                                string
}

// pgMigrations are applied in order; schema_migrations records each version applied.
// Append, never edit. {s} is the quoted schema.
var pgMigrations = []string{
	// 1: messages, inboxes and their heads.
	`CREATE TABLE {s}.messages (
		msg_id        BIGINT  PRIMARY KEY,
		sender_id     TEXT    NOT NULL,
		receiver_id   TEXT    NOT NULL,
		msg_type      INTEGER NOT NULL,
		msg           TEXT    NOT NULL,
		client_msg_id TEXT    NOT NULL DEFAULT '',
		chat_time_ms  BIGINT  NOT NULL,
		extra         TEXT    NOT NULL DEFAULT '',
		sender_conn   TEXT    NOT NULL DEFAULT '',
		node          TEXT    NOT NULL DEFAULT '',
		receiver_seq  BIGINT  NOT NULL,
		sender_seq    BIGINT  NOT NULL
	);
	CREATE UNIQUE INDEX messages_sender_client ON {s}.messages (sender_id, client_msg_id) WHERE client_msg_id <> '';
	CREATE TABLE {s}.inbox (
		user_id TEXT   NOT NULL,
		seq     BIGINT NOT NULL,
		msg_id  BIGINT NOT NULL,
		peer_id TEXT   NOT NULL,
		PRIMARY KEY (user_id, seq)
	);
	CREATE INDEX inbox_peer ON {s}.inbox (user_id, peer_id, seq);
	CREATE TABLE {s}.inbox_heads (
		user_id  TEXT   PRIMARY KEY,
		last_seq BIGINT NOT NULL
	);`,
	// 2: groups. A group message has group_id set and receiver_id empty; its inbox rows
	// name the group as peer_id.
	`ALTER TABLE {s}.messages ADD COLUMN group_id TEXT NOT NULL DEFAULT '';
	CREATE TABLE {s}.chat_groups (
		group_id TEXT PRIMARY KEY
	);
	CREATE TABLE {s}.group_members (
		group_id TEXT NOT NULL,
		user_id  TEXT NOT NULL,
		PRIMARY KEY (group_id, user_id)
	);`,
}

const pgMsgCols = `m.msg_id, m.sender_id, m.receiver_id, m.msg_type, m.msg, m.client_msg_id,
	m.chat_time_ms, m.extra, m.sender_conn, m.node, m.receiver_seq, m.sender_seq, m.group_id`

// OpenPostgres connects, creates the schema and tables when missing and applies pending
// migrations (under an advisory lock, so processes starting together do not race).
func OpenPostgres(ctx context.Context, cfg PostgresConfig) (*Postgres, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ccfg, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("saver: postgres: parse dsn: %w", err)
	}
	// A save transaction never waits for its client longer than one round trip. One
	// whose process hangs between two (SIGSTOP, a stuck host) would keep its inbox-head
	// locks, and a standby saver that took over would wait on them for as long: the server
	// ends such a session instead (its transaction rolls back; the batch is redelivered).
	if _, set := ccfg.RuntimeParams["idle_in_transaction_session_timeout"]; !set {
		ccfg.RuntimeParams["idle_in_transaction_session_timeout"] = "5s"
	}
	s := &Postgres{pool: newPGPool(ccfg, cfg.MaxConns), log: cfg.Logger, retry: cfg.MaxRetries}
	schema := pgx.Identifier{cfg.Schema}.Sanitize()
	s.q = newPGQueries(schema)
	version, err := s.migrate(ctx, cfg.Schema, schema)
	if err != nil {
		s.pool.close()
		return nil, err
	}
	s.log.Info("saver: postgres open", "host", ccfg.Host, "database", ccfg.Database, "schema", cfg.Schema, "schema_version", version)
	return s, nil
}

func newPGQueries(schema string) pgQueries {
	r := strings.NewReplacer("{s}", schema)
	return pgQueries{
		schema: schema,
		// One statement locks, creates and advances every inbox head the batch touches,
		// in user order (two transactions sharing users lock them in the same order), and
		// returns the new heads. It goes through the primary key whatever the statistics
		// say; a lock-then-select-then-update took three statements, two of which the
		// planner ran as scans of the whole table while its statistics were stale.
		bumpHeads: r.Replace(`INSERT INTO {s}.inbox_heads AS h (user_id, last_seq)
			SELECT u, n FROM unnest($1::text[], $2::bigint[]) AS v(u, n) ORDER BY u
			ON CONFLICT (user_id) DO UPDATE SET last_seq = h.last_seq + excluded.last_seq
			RETURNING user_id, last_seq`),
		// Two lookups joined by UNION, each a LIMIT 1 subquery per key so that it is an
		// index probe whatever the statistics say: an OR of both conditions scanned the
		// table, and a plain join of the keys became a merge join over a sorted scan of the
		// whole table as soon as a batch held a few hundred keys and the table's statistics
		// were stale (a fresh schema, autovacuum behind): each save then read the whole
		// table, batches grew, and the saver fell further behind.
		findDups: r.Replace(`SELECT ` + pgMsgCols + ` FROM unnest($1::bigint[]) AS i(id)
			CROSS JOIN LATERAL (SELECT * FROM {s}.messages WHERE msg_id = i.id LIMIT 1) m
			UNION
			SELECT ` + pgMsgCols + ` FROM unnest($2::text[], $3::text[]) AS k(s, c)
			CROSS JOIN LATERAL (SELECT * FROM {s}.messages WHERE sender_id = k.s AND client_msg_id = k.c
				AND client_msg_id <> '' LIMIT 1) m`),
		insMsgs: r.Replace(`INSERT INTO {s}.messages (msg_id, sender_id, receiver_id, msg_type, msg, client_msg_id,
				chat_time_ms, extra, sender_conn, node, receiver_seq, sender_seq, group_id)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::integer[], $5::text[], $6::text[],
				$7::bigint[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::bigint[], $13::text[])`),
		insInbox: r.Replace(`INSERT INTO {s}.inbox (user_id, seq, msg_id, peer_id)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[])`),
		// The one-round-trip save (saveOneTrip): advance the heads as bumpHeads does, then
		// insert the messages and inbox rows with seq = old head + the row's position among
		// its user's new seqs ($13, $14, $17: 1, 2, … per user; 0: no receiver, a group
		// message). Data-modifying CTEs share one snapshot and see each other's effects
		// only through RETURNING, which is how the inserts learn the heads.
		saveAll: r.Replace(`WITH v AS (SELECT * FROM unnest($1::text[], $2::bigint[]) AS v(u, n)),
			h AS (INSERT INTO {s}.inbox_heads AS h (user_id, last_seq) SELECT u, n FROM v ORDER BY u
				ON CONFLICT (user_id) DO UPDATE SET last_seq = h.last_seq + excluded.last_seq
				RETURNING user_id, last_seq),
			b AS (SELECT h.user_id, h.last_seq - v.n AS base FROM h JOIN v ON v.u = h.user_id),
			m AS (INSERT INTO {s}.messages (msg_id, sender_id, receiver_id, msg_type, msg, client_msg_id,
					chat_time_ms, extra, sender_conn, node, receiver_seq, sender_seq, group_id)
				SELECT x.id, x.snd, x.rcv, x.typ, x.msg, x.cid, x.ms, x.extra, x.conn, x.node,
					CASE WHEN x.rk = 0 THEN 0 ELSE rb.base + x.rk END, sb.base + x.sk, x.grp
				FROM unnest($3::bigint[], $4::text[], $5::text[], $6::integer[], $7::text[], $8::text[],
					$9::bigint[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::text[])
					AS x(id, snd, rcv, typ, msg, cid, ms, extra, conn, node, rk, sk, grp)
				JOIN b sb ON sb.user_id = x.snd LEFT JOIN b rb ON rb.user_id = x.rcv),
			i AS (INSERT INTO {s}.inbox (user_id, seq, msg_id, peer_id)
				SELECT y.u, b.base + y.k, y.id, y.peer
				FROM unnest($16::text[], $17::bigint[], $18::bigint[], $19::text[]) AS y(u, k, id, peer)
				JOIN b ON b.user_id = y.u)
			SELECT user_id, base FROM b`),
		// Only when a batch held records stored before: bumpHeads counted them as new.
		setHeads: r.Replace(`UPDATE {s}.inbox_heads h SET last_seq = v.last_seq
			FROM unnest($1::text[], $2::bigint[]) AS v(user_id, last_seq) WHERE h.user_id = v.user_id`),
		replay: r.Replace(`SELECT i.seq, ` + pgMsgCols + ` FROM {s}.inbox i JOIN {s}.messages m ON m.msg_id = i.msg_id
			WHERE i.user_id = $1 AND i.seq > $2 ORDER BY i.seq LIMIT $3`),
		history: r.Replace(`SELECT i.seq, ` + pgMsgCols + ` FROM {s}.inbox i JOIN {s}.messages m ON m.msg_id = i.msg_id
			WHERE i.user_id = $1 AND i.seq < $2 ORDER BY i.seq DESC LIMIT $3`),
		historyPeer: r.Replace(`SELECT i.seq, ` + pgMsgCols + ` FROM {s}.inbox i JOIN {s}.messages m ON m.msg_id = i.msg_id
			WHERE i.user_id = $1 AND i.peer_id = $2 AND m.group_id = '' AND i.seq < $3 ORDER BY i.seq DESC LIMIT $4`),
		historyGroup: r.Replace(`SELECT i.seq, ` + pgMsgCols + ` FROM {s}.inbox i JOIN {s}.messages m ON m.msg_id = i.msg_id
			WHERE i.user_id = $1 AND i.peer_id = $2 AND m.group_id = $2 AND i.seq < $3 ORDER BY i.seq DESC LIMIT $4`),
		readGroups: r.Replace(`SELECT g.group_id, m.user_id FROM {s}.chat_groups g LEFT JOIN {s}.group_members m ON m.group_id = g.group_id
			WHERE g.group_id = ANY($1::text[]) ORDER BY g.group_id, m.user_id`),
		lastSeq: r.Replace(`SELECT 1, coalesce((SELECT last_seq FROM {s}.inbox_heads WHERE user_id = $1), 0)`),
		lastSeqs: r.Replace(`SELECT u.i, coalesce((SELECT h.last_seq FROM {s}.inbox_heads h WHERE h.user_id = u.id), 0)
			FROM unnest($1::text[]) WITH ORDINALITY AS u(id, i)`),
	}
}

// migrate creates the schema and applies pending pgMigrations in one transaction that
// holds a transaction-level advisory lock derived from the schema name.
func (s *Postgres) migrate(ctx context.Context, name, schema string) (int, error) {
	c, err := s.pool.acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("saver: postgres connect: %w", err)
	}
	defer s.pool.release(c)
	h := fnv.New64a()
	_, _ = h.Write([]byte("imgate/saver/migrate:" + name))
	key := int64(h.Sum64() & math.MaxInt64)

	var version int
	err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, key); err != nil {
			return fmt.Errorf("advisory lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+schema+`.schema_migrations (
			version    INTEGER PRIMARY KEY,
			applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+schema+`.schema_migrations`).Scan(&version); err != nil {
			return fmt.Errorf("read version: %w", err)
		}
		if version > len(pgMigrations) {
			return fmt.Errorf("schema version %d is newer than this binary's %d", version, len(pgMigrations))
		}
		for v := version; v < len(pgMigrations); v++ {
			if _, err := tx.Exec(ctx, strings.ReplaceAll(pgMigrations[v], "{s}", schema)); err != nil {
				return fmt.Errorf("to version %d: %w", v+1, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+schema+`.schema_migrations (version) VALUES ($1)`, v+1); err != nil {
				return fmt.Errorf("record version %d: %w", v+1, err)
			}
			s.log.Info("saver: postgres schema migrated", "schema", name, "version", v+1)
		}
		version = len(pgMigrations)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("saver: postgres migrate: %w", err)
	}
	return version, nil
}

// pgUniqueViolation is the error of an insert that met a row the duplicate lookup had not
// seen (a msgId or clientMsgId saved concurrently by a batch with no user in common): the
// transaction is rolled back, the batch retried, and the lookup then finds it.
const pgUniqueViolation = "23505"

// Save implements [Store.Save].
func (s *Postgres) Save(ctx context.Context, recs []message.Record) ([]message.Saved, error) {
	return s.SaveOrdered(ctx, recs, nil)
}

// SaveOrdered is Save for a caller that overlaps saves: locked (if not nil) is called
// once, as soon as the transaction holds the inbox-head locks that order its seqs
// (or when SaveOrdered returns, whichever comes first). A save started after that gets
// seqs after this one's for every user the two share, so the caller may start the next
// save then and still publish in the order it started them. A retried attempt may lose
// that order; the nodes then see a gap, which they repair in order. A batch saved in
// one round trip (nothing in it stored before: the common case) holds its locks only
// inside PostgreSQL, so locked is called when it has committed; only the two-round-trip
// save of a batch with duplicates lets the next one start earlier.
func (s *Postgres) SaveOrdered(ctx context.Context, recs []message.Record, locked func()) ([]message.Saved, error) {
	if locked == nil {
		locked = func() {}
	}
	locked = sync.OnceFunc(locked)
	defer locked()
	if err := validateBatch(recs); err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if len(recs) == 0 {
		return []message.Saved{}, nil
	}
	for attempt := 0; ; attempt++ {
		out, err := s.saveOnce(ctx, recs, locked)
		if err == nil {
			return out, nil
		}
		if attempt >= s.retry || !retryable(err) || ctx.Err() != nil {
			return nil, s.fail("save", err)
		}
		s.log.Debug("saver: postgres batch retried", "records", len(recs), "attempt", attempt+1, "err", err)
	}
}

// retryable reports errors after which the whole transaction may simply run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01" || pe.Code == pgUniqueViolation
	}
	return pgconn.SafeToRetry(err)
}

// scanAll reads the next result of br row by row, closing it before returning.
func scanAll(br pgx.BatchResults, row func(pgx.Rows) error) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// pgMsgColumns are the messages of a batch as column arrays for unnest.
type pgMsgColumns struct {
	id, chatMS, rseq, sseq                             []int64
	typ                                                []int32
	sender, receiver, msg, clientID, extra, conn, node []string
	group                                              []string
}

func (c *pgMsgColumns) add(s *message.Saved) {
	c.id = append(c.id, s.Msg.MsgID)
	c.sender = append(c.sender, s.Msg.SenderID)
	c.receiver = append(c.receiver, s.Msg.ReceiverID)
	c.typ = append(c.typ, int32(s.Msg.MsgType))
	c.msg = append(c.msg, s.Msg.Msg)
	c.clientID = append(c.clientID, s.Msg.ClientMsgID)
	c.chatMS = append(c.chatMS, toMillis(s.Msg.ChatTime))
	c.extra = append(c.extra, string(s.Msg.Extra))
	c.conn = append(c.conn, connText(s.SenderConn))
	c.node = append(c.node, s.Node)
	c.rseq = append(c.rseq, s.ReceiverSeq)
	c.sseq = append(c.sseq, s.SenderSeq)
	c.group = append(c.group, s.Msg.GroupID)
}

// pgInboxColumns are the inbox rows of a batch as column arrays for unnest.
type pgInboxColumns struct {
	user, peer []string
	seq, msgID []int64
}

func (c *pgInboxColumns) add(user string, seq, msgID int64, peer string) {
	c.user = append(c.user, user)
	c.seq = append(c.seq, seq)
	c.msgID = append(c.msgID, msgID)
	c.peer = append(c.peer, peer)
}

// Replay implements [Store.Replay].
func (s *Postgres) Replay(ctx context.Context, userID string, afterSeq int64, limit int) ([]message.Entry, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	return s.entries(ctx, "replay", limit, s.q.replay, userID, afterSeq, limit)
}

// History implements [Store.History].
func (s *Postgres) History(ctx context.Context, userID, peerID string, beforeSeq int64, limit int) ([]message.Entry, error) {
	beforeSeq, err := historyBefore(beforeSeq, limit)
	if err != nil {
		return nil, err
	}
	if peerID == "" {
		return s.entries(ctx, "history", limit, s.q.history, userID, beforeSeq, limit)
	}
	return s.entries(ctx, "history", limit, s.q.historyPeer, userID, peerID, beforeSeq, limit)
}

// LastSeq implements [Store.LastSeq].
func (s *Postgres) LastSeq(ctx context.Context, userID string) (int64, error) {
	return lastSeqOf(ctx, s, userID)
}

// LastSeqs implements [Store.LastSeqs] with one statement: a primary-key probe of
// inbox_heads per user (a subquery per row, so that no plan scans the table however many
// users are asked and however stale its statistics). One user, the common case of a node
// binding at a moderate rate, gets a plain lookup: about a quarter cheaper than the array form
// (BenchmarkNewestSeqs).
func (s *Postgres) LastSeqs(ctx context.Context, users []string) ([]int64, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if len(users) == 0 {
		return []int64{}, nil
	}
	c, err := s.pool.acquire(ctx)
	if err != nil {
		return nil, s.fail("last seqs", err)
	}
	defer s.pool.release(c)
	var rows pgx.Rows
	if len(users) == 1 {
		rows, err = c.Query(ctx, s.q.lastSeq, users[0])
	} else {
		rows, err = c.Query(ctx, s.q.lastSeqs, users)
	}
	if err != nil {
		return nil, s.fail("last seqs", err)
	}
	defer rows.Close()
	out, err := scanLastSeqs(rows, len(users))
	if err != nil {
		return nil, s.fail("last seqs", err)
	}
	return out, nil
}

// Close implements [Store.Close]: idle connections are closed now, connections in use
// when their call returns. It is idempotent; later calls return [ErrClosed].
func (s *Postgres) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.pool.close()
	return nil
}

func (s *Postgres) entries(ctx context.Context, op string, limit int, query string, args ...any) ([]message.Entry, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	c, err := s.pool.acquire(ctx)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer s.pool.release(c)
	rows, err := c.Query(ctx, query, args...)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	out, err := scanEntries(rows, limit)
	if err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

// fail wraps a database error; after Close it is ErrClosed.
func (s *Postgres) fail(op string, err error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return fmt.Errorf("saver: postgres %s: %w", op, err)
}
