package saver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"imgate/message"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver (pure Go)
)

var _ Store = (*SQLite)(nil)

// SQLiteConfig configures [OpenSQLite]. The zero value of every field but Path means its
// documented default, which OpenSQLite applies.
type SQLiteConfig struct {
	// Path is the database file; it is created with its schema when missing. Required.
	// The WAL lives beside it in Path-wal and Path-shm.
	Path string
	// Synchronous is the SQLite synchronous level: "FULL" (default) fsyncs the WAL at
	// every commit, so a Save that returned survives a process crash and a power loss.
	// "NORMAL" fsyncs only at checkpoints: process-crash safe, NOT power-loss safe (the
	// last transactions before a power cut may be lost), and several times faster for
	// small batches.
	Synchronous string
	// BusyTimeout is how long a statement waits for a lock held by another process
	// (another imgate opening the same file). Default 5s.
	BusyTimeout time.Duration
	// ReadConns is the size of the read pool used by Replay, LastSeq and History; WAL
	// lets them run while the single writer commits. Default 4.
	ReadConns int
	// Logger receives open/migrate events. Default: discard.
	Logger *slog.Logger
}

// withDefaults returns c with every zero field set to its default. It is the one place
// defaults are applied.
func (c SQLiteConfig) withDefaults() SQLiteConfig {
	if c.Synchronous == "" {
		c.Synchronous = "FULL"
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = 5 * time.Second
	}
	if c.ReadConns == 0 {
		c.ReadConns = 4
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports a missing path or an unknown synchronous level. Zero values of the
// other fields are valid: they mean their defaults. It does not change c.
func (c SQLiteConfig) Validate() error {
	if c.Path == "" {
		return fmt.Errorf("%w: sqlite: path is empty", errInvalidConfig)
	}
	if strings.ContainsRune(c.Path, '?') {
		return fmt.Errorf("%w: sqlite: path %q contains '?'", errInvalidConfig, c.Path)
	}
	switch strings.ToUpper(c.Synchronous) {
	case "", "FULL", "NORMAL":
	default:
		return fmt.Errorf("%w: sqlite: synchronous %q is not FULL or NORMAL", errInvalidConfig, c.Synchronous)
	}
	if c.BusyTimeout < 0 || c.ReadConns < 0 {
		return fmt.Errorf("%w: sqlite: negative busy timeout or read conns", errInvalidConfig)
	}
	return nil
}

// SQLite is a [Store] in an embedded SQLite database (modernc.org/sqlite, no cgo).
//
// The database runs in WAL mode with one writer connection: Save transactions are
// serialized (SQLite has one writer anyway), which makes seq assignment trivially
// gap-free and commit-ordered; reads use a separate pool and never wait for the writer.
// Foreign keys are off. It is safe for concurrent use.
type SQLite struct {
	w, r   *sql.DB // w: MaxOpenConns(1), BEGIN IMMEDIATE; r: query_only pool
	log    *slog.Logger
	closed atomic.Bool

	// Prepared on w. The reads and the heads take a batch as one JSON array parameter
	// (json_each); messages and inbox rows go in multi-row INSERTs of sqliteChunks rows.
	readHeads, findDups, writeHeads, readGroups *sql.Stmt
	insMsgs, insInbox                           map[int]*sql.Stmt // by rows per statement
	// Prepared on r.
	replay, history, historyPeer, historyGroup, lastSeqs, groupExists, groupMembers *sql.Stmt
}

// sqliteMigrations are applied in order; PRAGMA user_version is the number applied.
// Append, never edit: a database records how many it has seen.
var sqliteMigrations = []string{
	// 1: messages, inboxes and their heads.
	`CREATE TABLE messages (
		msg_id        INTEGER PRIMARY KEY,
		sender_id     TEXT    NOT NULL,
		receiver_id   TEXT    NOT NULL,
		msg_type      INTEGER NOT NULL,
		msg           TEXT    NOT NULL,
		client_msg_id TEXT    NOT NULL DEFAULT '',
		chat_time_ms  INTEGER NOT NULL,
		extra         BLOB    NOT NULL DEFAULT x'',
		sender_conn   TEXT    NOT NULL DEFAULT '',
		node          TEXT    NOT NULL DEFAULT '',
		receiver_seq  INTEGER NOT NULL,
		sender_seq    INTEGER NOT NULL
	);
	CREATE UNIQUE INDEX messages_sender_client ON messages (sender_id, client_msg_id) WHERE client_msg_id <> '';
	CREATE TABLE inbox (
		user_id TEXT    NOT NULL,
		seq     INTEGER NOT NULL,
		msg_id  INTEGER NOT NULL,
		peer_id TEXT    NOT NULL,
		PRIMARY KEY (user_id, seq)
	) WITHOUT ROWID;
	CREATE INDEX inbox_peer ON inbox (user_id, peer_id, seq);
	CREATE TABLE inbox_heads (
		user_id  TEXT    PRIMARY KEY,
		last_seq INTEGER NOT NULL
	) WITHOUT ROWID;`,
	// 2: groups. A group message has group_id set and receiver_id empty; its inbox rows
	// name the group as peer_id.
	`ALTER TABLE messages ADD COLUMN group_id TEXT NOT NULL DEFAULT '';
	CREATE TABLE chat_groups (
		group_id TEXT PRIMARY KEY
	) WITHOUT ROWID;
	CREATE TABLE group_members (
		group_id TEXT NOT NULL,
		user_id  TEXT NOT NULL,
		PRIMARY KEY (group_id, user_id)
	) WITHOUT ROWID;`,
}

const sqliteMsgCols = `m.msg_id, m.sender_id, m.receiver_id, m.msg_type, m.msg, m.client_msg_id,
	m.chat_time_ms, m.extra, m.sender_conn, m.node, m.receiver_seq, m.sender_seq, m.group_id`

// OpenSQLite opens (creating and migrating when needed) the database at cfg.Path.
func OpenSQLite(ctx context.Context, cfg SQLiteConfig) (*SQLite, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &SQLite{log: cfg.Logger}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(0)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+strings.ToUpper(cfg.Synchronous)+")")
	// Statement journals in memory, not in temp files: every multi-row insert of a batch
	// opens one, and written to a file they were a third of the writer's syscalls. A
	// larger page cache (16 MiB) keeps a batch from spilling pages mid-transaction.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "cache_size(-16384)")
	q.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", cfg.Path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("saver: sqlite open %s: %w", cfg.Path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s.w = w
	version, err := s.migrate(ctx)
	if err != nil {
		_ = w.Close()
		return nil, err
	}

	rq := url.Values{}
	rq.Add("_pragma", "busy_timeout("+strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)+")")
	rq.Add("_pragma", "foreign_keys(0)")
	rq.Set("_query_only", "1")
	r, err := sql.Open("sqlite", cfg.Path+"?"+rq.Encode())
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("saver: sqlite open %s for reading: %w", cfg.Path, err)
	}
	r.SetMaxOpenConns(cfg.ReadConns)
	r.SetMaxIdleConns(cfg.ReadConns)
	s.r = r
	if err := s.prepare(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	s.log.Info("saver: sqlite open", "path", cfg.Path, "synchronous", strings.ToUpper(cfg.Synchronous), "schema_version", version)
	return s, nil
}

// migrate applies the missing sqliteMigrations in one immediate transaction (a second
// process opening the same file waits on the busy timeout) and returns the version.
func (s *SQLite) migrate(ctx context.Context) (int, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("saver: sqlite migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, fmt.Errorf("saver: sqlite migrate: read user_version: %w", err)
	}
	if version > len(sqliteMigrations) {
		return 0, fmt.Errorf("saver: sqlite migrate: database schema version %d is newer than this binary's %d", version, len(sqliteMigrations))
	}
	for v := version; v < len(sqliteMigrations); v++ {
		if _, err := tx.ExecContext(ctx, sqliteMigrations[v]); err != nil {
			return 0, fmt.Errorf("saver: sqlite migrate to version %d: %w", v+1, err)
		}
		s.log.Info("saver: sqlite schema migrated", "version", v+1)
	}
	if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(len(sqliteMigrations))); err != nil {
		return 0, fmt.Errorf("saver: sqlite migrate: set user_version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("saver: sqlite migrate: commit: %w", err)
	}
	return len(sqliteMigrations), nil
}

func (s *SQLite) prepare(ctx context.Context) error {
	stmts := []struct {
		dst *(*sql.Stmt)
		db  *sql.DB
		sql string
	}{
		{&s.readHeads, s.w, `SELECT user_id, last_seq FROM inbox_heads WHERE user_id IN (SELECT value FROM json_each(?))`},
		{&s.findDups, s.w, `SELECT ` + sqliteMsgCols + ` FROM messages m WHERE m.msg_id IN (SELECT value FROM json_each(?1))
			UNION ALL
			SELECT ` + sqliteMsgCols + ` FROM json_each(?2) AS j CROSS JOIN messages AS m
			WHERE m.sender_id = j.value->>'s' AND m.client_msg_id = j.value->>'k' AND m.client_msg_id <> ''`},
		{&s.writeHeads, s.w, `INSERT INTO inbox_heads (user_id, last_seq)
			SELECT value->>'u', value->>'q' FROM json_each(?) WHERE true
			ON CONFLICT (user_id) DO UPDATE SET last_seq = excluded.last_seq`},
		{&s.readGroups, s.w, `SELECT g.group_id, m.user_id FROM chat_groups g LEFT JOIN group_members m ON m.group_id = g.group_id
			WHERE g.group_id IN (SELECT value FROM json_each(?)) ORDER BY g.group_id, m.user_id`},
		{&s.replay, s.r, `SELECT i.seq, ` + sqliteMsgCols + ` FROM inbox i JOIN messages m ON m.msg_id = i.msg_id
			WHERE i.user_id = ? AND i.seq > ? ORDER BY i.seq LIMIT ?`},
		{&s.history, s.r, `SELECT i.seq, ` + sqliteMsgCols + ` FROM inbox i JOIN messages m ON m.msg_id = i.msg_id
			WHERE i.user_id = ? AND i.seq < ? ORDER BY i.seq DESC LIMIT ?`},
		{&s.historyPeer, s.r, `SELECT i.seq, ` + sqliteMsgCols + ` FROM inbox i JOIN messages m ON m.msg_id = i.msg_id
			WHERE i.user_id = ? AND i.peer_id = ? AND m.group_id = '' AND i.seq < ? ORDER BY i.seq DESC LIMIT ?`},
		{&s.historyGroup, s.r, `SELECT i.seq, ` + sqliteMsgCols + ` FROM inbox i JOIN messages m ON m.msg_id = i.msg_id
			WHERE i.user_id = ? AND i.peer_id = ?2 AND m.group_id = ?2 AND i.seq < ? ORDER BY i.seq DESC LIMIT ?`},
		{&s.groupExists, s.r, `SELECT count(*) FROM chat_groups WHERE group_id = ?`},
		{&s.groupMembers, s.r, `SELECT user_id FROM group_members WHERE group_id = ? ORDER BY user_id`},
		{&s.lastSeqs, s.r, `SELECT u.key + 1, coalesce(h.last_seq, 0) FROM json_each(?) u
			LEFT JOIN inbox_heads h ON h.user_id = u.value`},
	}
	for _, st := range stmts {
		p, err := st.db.PrepareContext(ctx, st.sql)
		if err != nil {
			return fmt.Errorf("saver: sqlite prepare: %w", err)
		}
		*st.dst = p
	}
	s.insMsgs = make(map[int]*sql.Stmt, len(sqliteChunks))
	s.insInbox = make(map[int]*sql.Stmt, len(sqliteChunks))
	for _, n := range sqliteChunks {
		// The statements are built from constants and placeholder lists only.
		//nolint:gosec // G202: placeholders, no data
		msgs := `INSERT INTO messages (msg_id, sender_id, receiver_id, msg_type, msg, client_msg_id,
			chat_time_ms, extra, sender_conn, node, receiver_seq, sender_seq, group_id) VALUES ` + valuesList(n, 13)
		p, err := s.w.PrepareContext(ctx, msgs)
		if err != nil {
			return fmt.Errorf("saver: sqlite prepare: %w", err)
		}
		s.insMsgs[n] = p
		if p, err = s.w.PrepareContext(ctx, `INSERT INTO inbox (user_id, seq, msg_id, peer_id) VALUES `+valuesList(n, 4)); err != nil { //nolint:gosec // G202: placeholders, no data
			return fmt.Errorf("saver: sqlite prepare: %w", err)
		}
		s.insInbox[n] = p
	}
	return nil
}

// sqliteChunks are the row counts of the multi-row INSERTs, largest first; a batch is
// written greedily in chunks of these sizes (256 messages: four statements).
var sqliteChunks = []int{64, 16, 4, 1}

// valuesList is "(?,?),(?,?)" for rows rows of cols columns.
func valuesList(rows, cols int) string {
	row := "(?" + strings.Repeat(",?", cols-1) + ")"
	return row + strings.Repeat(","+row, rows-1)
}

// insertChunked runs stmts (by chunk size) over rows of args, cols values per row.
func insertChunked(ctx context.Context, tx *sql.Tx, stmts map[int]*sql.Stmt, args []any, cols int) error {
	for len(args) > 0 {
		rows := len(args) / cols
		for _, n := range sqliteChunks {
			if n <= rows {
				if _, err := tx.StmtContext(ctx, stmts[n]).ExecContext(ctx, args[:n*cols]...); err != nil {
					return err
				}
				args = args[n*cols:]
				break
			}
		}
	}
	return nil
}

// Save implements [Store.Save] in one immediate transaction on the writer connection:
// read the heads and possible duplicates of the whole batch, decide in Go, then insert
// messages, inbox rows and heads with one multi-row statement each.
func (s *SQLite) Save(ctx context.Context, recs []message.Record) (out []message.Saved, err error) {
	if err := validateBatch(recs); err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if len(recs) == 0 {
		return []message.Saved{}, nil
	}
	ids := make([]int64, len(recs))
	var keys []sqliteKey
	for i := range recs {
		ids[i] = recs[i].Msg.MsgID
		if k := recs[i].Msg.ClientMsgID; k != "" {
			keys = append(keys, sqliteKey{Sender: recs[i].Msg.SenderID, Key: k})
		}
	}
	if keys == nil {
		keys = []sqliteKey{}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.fail("begin", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	groups, err := s.readGroupsTx(ctx, tx, groupIDs(recs))
	if err != nil {
		return nil, s.fail("read groups", err)
	}
	users := lockUsers(recs, groups)
	usersJSON, idsJSON, keysJSON, err := marshal3(users, ids, keys)
	if err != nil {
		return nil, err
	}

	heads := make(map[string]int64, len(users))
	rows, err := tx.StmtContext(ctx, s.readHeads).QueryContext(ctx, usersJSON)
	if err != nil {
		return nil, s.fail("read inbox heads", err)
	}
	for rows.Next() {
		var u string
		var last int64
		if err = rows.Scan(&u, &last); err != nil {
			_ = rows.Close()
			return nil, s.fail("read inbox heads", err)
		}
		heads[u] = last
	}
	err = rows.Err()
	_ = rows.Close()
	if err != nil {
		return nil, s.fail("read inbox heads", err)
	}

	var found []message.Saved
	rows, err = tx.StmtContext(ctx, s.findDups).QueryContext(ctx, idsJSON, keysJSON)
	if err != nil {
		return nil, s.fail("find duplicates", err)
	}
	for rows.Next() {
		var mr msgRow
		if err = rows.Scan(mr.dest()...); err != nil {
			_ = rows.Close()
			return nil, s.fail("find duplicates", err)
		}
		found = append(found, mr.saved())
	}
	err = rows.Err()
	_ = rows.Close()
	if err != nil {
		return nil, s.fail("find duplicates", err)
	}

	out, fresh := assign(recs, found, heads, groups)
	if len(fresh) > 0 {
		msgs := make([]any, 0, 13*len(fresh))
		inbox := make([]any, 0, 8*len(fresh))
		for _, i := range fresh {
			m := &out[i]
			snd, rcv := m.Msg.SenderID, m.Msg.ReceiverID
			extra := m.Msg.Extra
			if extra == nil {
				extra = []byte{}
			}
			msgs = append(msgs, m.Msg.MsgID, snd, rcv, int64(m.Msg.MsgType), m.Msg.Msg, m.Msg.ClientMsgID,
				toMillis(m.Msg.ChatTime), extra, connText(m.SenderConn), m.Node, m.ReceiverSeq, m.SenderSeq, m.Msg.GroupID)
			forInbox(m, func(user string, seq int64, peer string) {
				inbox = append(inbox, user, seq, m.Msg.MsgID, peer)
			})
		}
		newHeads := make([]sqliteHead, 0, len(users))
		for _, u := range users {
			newHeads = append(newHeads, sqliteHead{U: u, Q: heads[u]})
		}
		headsJSON, err := json.Marshal(newHeads)
		if err != nil {
			return nil, fmt.Errorf("saver: sqlite: encode heads: %w", err)
		}
		if err = insertChunked(ctx, tx, s.insMsgs, msgs, 13); err != nil {
			return nil, s.fail("insert messages", err)
		}
		if err = insertChunked(ctx, tx, s.insInbox, inbox, 4); err != nil {
			return nil, s.fail("insert inbox", err)
		}
		if _, err = tx.StmtContext(ctx, s.writeHeads).ExecContext(ctx, string(headsJSON)); err != nil {
			return nil, s.fail("write inbox heads", err)
		}
	}
	if err = tx.Commit(); err != nil {
		return nil, s.fail("commit", err)
	}
	return out, nil
}

// The JSON shapes Save passes to json_each. Strings round-trip exactly: Record.Validate
// guarantees valid UTF-8, and JSON escapes decode to the same bytes.
type (
	sqliteKey struct {
		Sender string `json:"s"`
		Key    string `json:"k"`
	}
	sqliteHead struct {
		U string `json:"u"`
		Q int64  `json:"q"`
	}
)

// marshal3 encodes three values as JSON text parameters.
func marshal3(a, b, c any) (string, string, string, error) {
	var out [3]string
	for i, v := range [3]any{a, b, c} {
		j, err := json.Marshal(v)
		if err != nil {
			return "", "", "", fmt.Errorf("saver: sqlite: encode batch: %w", err)
		}
		out[i] = string(j)
	}
	return out[0], out[1], out[2], nil
}

// Replay implements [Store.Replay].
func (s *SQLite) Replay(ctx context.Context, userID string, afterSeq int64, limit int) ([]message.Entry, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	rows, err := s.replay.QueryContext(ctx, userID, afterSeq, limit)
	return s.entries("replay", rows, err, limit)
}

// LastSeq implements [Store.LastSeq].
func (s *SQLite) LastSeq(ctx context.Context, userID string) (int64, error) {
	return lastSeqOf(ctx, s, userID)
}

// LastSeqs implements [Store.LastSeqs] with one statement over the users as a JSON array.
func (s *SQLite) LastSeqs(ctx context.Context, users []string) ([]int64, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if len(users) == 0 {
		return []int64{}, nil
	}
	arg, err := json.Marshal(users)
	if err != nil {
		return nil, fmt.Errorf("saver: sqlite last seqs: %w", err)
	}
	rows, err := s.lastSeqs.QueryContext(ctx, string(arg))
	if err != nil {
		return nil, s.fail("last seqs", err)
	}
	defer func() { _ = rows.Close() }()
	out, err := scanLastSeqs(rows, len(users))
	if err != nil {
		return nil, s.fail("last seqs", err)
	}
	return out, nil
}

// History implements [Store.History].
func (s *SQLite) History(ctx context.Context, userID, peerID string, beforeSeq int64, limit int) ([]message.Entry, error) {
	beforeSeq, err := historyBefore(beforeSeq, limit)
	if err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var rows *sql.Rows
	if peerID == "" {
		rows, err = s.history.QueryContext(ctx, userID, beforeSeq, limit)
	} else {
		rows, err = s.historyPeer.QueryContext(ctx, userID, peerID, beforeSeq, limit)
	}
	return s.entries("history", rows, err, limit)
}

// Close implements [Store.Close]. It is idempotent; later calls of other methods return
// [ErrClosed].
func (s *SQLite) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	stmts := []*sql.Stmt{s.readHeads, s.findDups, s.writeHeads, s.readGroups, s.replay, s.history, s.historyPeer,
		s.historyGroup, s.lastSeqs, s.groupExists, s.groupMembers}
	for _, n := range sqliteChunks {
		stmts = append(stmts, s.insMsgs[n], s.insInbox[n])
	}
	for _, st := range stmts {
		if st != nil {
			_ = st.Close()
		}
	}
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("saver: sqlite close: %w", err)
	}
	return nil
}

// fail wraps a database error; after Close it is ErrClosed.
func (s *SQLite) fail(op string, err error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return fmt.Errorf("saver: sqlite %s: %w", op, err)
}

func (s *SQLite) entries(op string, rows *sql.Rows, err error, limit int) ([]message.Entry, error) {
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

// msgRow is a message row as scanned (sqliteMsgCols, and the same columns in Postgres).
type msgRow struct {
	s      message.Saved
	chatMS int64
	conn   string // sender_conn: the connection id in decimal, '' for none
}

// dest returns the scan destinations in column order.
func (r *msgRow) dest() []any {
	m := &r.s
	return []any{&m.Msg.MsgID, &m.Msg.SenderID, &m.Msg.ReceiverID, &m.Msg.MsgType, &m.Msg.Msg, &m.Msg.ClientMsgID,
		&r.chatMS, &m.Msg.Extra, &r.conn, &m.Node, &m.ReceiverSeq, &m.SenderSeq, &m.Msg.GroupID}
}

// saved is the row in its stored form.
func (r *msgRow) saved() message.Saved {
	m := r.s
	m.Msg.ChatTime = fromMillis(r.chatMS)
	m.SenderConn = connFromText(r.conn)
	m.Msg.Extra = cloneExtra(m.Msg.Extra)
	return m
}
