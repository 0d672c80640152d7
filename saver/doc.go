// Package saver persists chat messages into per-user inboxes.
//
// Every content message accepted by a node becomes a [message.Record] (the contract
// lives in package imgate/message, not here). A [Store] writes it once (idempotent on
// the snowflake msgId and on the sender's clientMsgId) and appends it to the inbox of
// the receiver and of the sender, each with that user's next seq: seqs are strictly
// increasing, gap-free and assigned in commit order, so a device that replays its inbox
// from a cursor (PROTOCOL §5) never skips a message.
//
// Implementations, all with the same semantics and all passing [imgate/saver/storetest]:
//
//   - [Memory] ([NewMemory]): in-process, lost on exit; the unit-test double and
//     `--store memory`.
//   - [SQLite] ([OpenSQLite]): an embedded file (modernc.org/sqlite, no cgo) in WAL mode
//     with a single writer connection; the standalone default.
//   - [Postgres] ([OpenPostgres]): PostgreSQL through pgx; several saver processes may
//     write to the same database concurrently.
//
// The [Batcher] sits in front of a Store and turns a stream of Records into group
// commits: [Batcher.Submit] never blocks (a full queue answers [ErrFull]), one goroutine
// saves whatever is queued, up to MaxBatch records, in one transaction and hands the
// result to a [message.Sink] (the node), which sends ACKs and pushes the messages
// (persist, then push).
//
// Typical wiring:
//
//	st, err := saver.OpenSQLite(ctx, saver.SQLiteConfig{Path: "imgate.db", Logger: log})
//	if err != nil { ... }
//	defer st.Close()
//	b := saver.NewBatcher(st, saver.BatcherConfig{Logger: log})
//	node, err := server.New(cfg, server.Deps{Outbox: b, Inbox: st}) // Submit queues until Start
//	b.Start(node) // node implements message.Sink
//	defer b.Close(ctx)
//	if err := b.Submit(rec); errors.Is(err, saver.ErrFull) {
//		// answer the sender ERROR unavailable: it retries with the same clientMsgId
//	}
//
// # Schema
//
// Both SQL stores create and migrate their tables on open (SQLite: PRAGMA user_version;
// PostgreSQL: a schema_migrations table written under pg_advisory_xact_lock, so savers
// starting together do not race):
//
//	messages(msg_id PK, sender_id, receiver_id, msg_type, msg, client_msg_id,
//	         chat_time_ms, extra, sender_conn, node, receiver_seq, sender_seq)
//	    UNIQUE (sender_id, client_msg_id) WHERE client_msg_id <> ''
//	inbox(user_id, seq, msg_id, peer_id, PRIMARY KEY (user_id, seq))  + index (user_id, peer_id, seq)
//	inbox_heads(user_id PK, last_seq)
//
// chat_time_ms is Unix milliseconds; extra is the raw JSON members as text, byte for
// byte (empty when none); receiver_seq and sender_seq let a resend be answered from one row.
//
// # Durability
//
// A Save that returned is durable. SQLite with Synchronous "FULL" (the default) survives
// a process crash and a power loss; "NORMAL" survives a process crash (SIGKILL, panic,
// OOM kill) but not a power loss or kernel crash. PostgreSQL is as durable as its
// synchronous_commit setting.
//
// Errors are prefixed "saver: " and wrap their cause; callers branch with errors.Is on
// [ErrClosed], [ErrFull] and [message.ErrInvalid] (an invalid record or argument).
package saver
