package saver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"imgate/message"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// saveOnce runs one attempt of Save's transaction. Group members are read first (round
// trip 0, only for batches with group messages). Then one round trip does it all when no
// record of the batch was stored before (saveOneTrip: the common case); when one was
// (a resend, a redelivered batch) that transaction fails on a unique index and rolls
// back, and saveTwoTrips saves the batch knowing its duplicates.
func (s *Postgres) saveOnce(ctx context.Context, recs []message.Record, locked func()) (out []message.Saved, err error) {
	c, err := s.pool.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer s.pool.release(c) // a connection left in a transaction is closed, not reused
	defer func() {
		if !c.IsClosed() && c.PgConn().TxStatus() != 'I' {
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, _ = c.Exec(rctx, "ROLLBACK")
			cancel()
		}
	}()

	// Round trip 0, only for group messages: their groups' members. Read before the
	// transaction locks anything: a membership change committed after this read applies
	// from the next batch on (the change and this message were concurrent).
	var groups map[string][]string
	if gids := groupIDs(recs); len(gids) > 0 {
		rows, err := c.Query(ctx, s.q.readGroups, gids)
		if err != nil {
			return nil, err
		}
		groups, err = scanGroups(rows)
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	p := planBatch(recs, groups)
	out, ok, err := s.saveOneTrip(ctx, c, recs, groups, &p)
	if err != nil || ok {
		if ok {
			locked()
		}
		return out, err
	}
	if c.PgConn().TxStatus() != 'I' {
		if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
			return nil, err
		}
	}
	return s.saveTwoTrips(ctx, c, recs, groups, &p, locked)
}

// batchPlan is what both saves derive from a batch before their first round trip.
type batchPlan struct {
	// counts is the number of seqs each user gets if nothing in the batch was stored
	// before; rel and fresh are that hand-out (assign over heads at zero): seqs 1, 2, …
	// per user, and the records that are new.
	counts map[string]int64
	rel    []message.Saved
	fresh  []int
	bump   pgHeadColumns // the users with a count, in lock (sorted) order
	// The duplicate lookup's arguments: every msgId, and (senderId, clientMsgId) pairs.
	ids                 []int64
	dupSenders, dupKeys []string
}

func planBatch(recs []message.Record, groups map[string][]string) batchPlan {
	p := batchPlan{counts: make(map[string]int64), ids: make([]int64, len(recs))}
	p.rel, p.fresh = assign(recs, nil, p.counts, groups)
	for _, u := range lockUsers(recs, groups) {
		if n := p.counts[u]; n > 0 {
			p.bump.user = append(p.bump.user, u)
			p.bump.n = append(p.bump.n, n)
		}
	}
	for i := range recs {
		p.ids[i] = recs[i].Msg.MsgID
		if recs[i].Msg.ClientMsgID != "" {
			p.dupSenders = append(p.dupSenders, recs[i].Msg.SenderID)
			p.dupKeys = append(p.dupKeys, recs[i].Msg.ClientMsgID)
		}
	}
	return p
}

// rowColumns are the message and inbox rows of the fresh records of out.
func rowColumns(out []message.Saved, fresh []int) (pgMsgColumns, pgInboxColumns) {
	var cols pgMsgColumns
	var inbox pgInboxColumns
	for _, i := range fresh {
		m := &out[i]
		cols.add(m)
		forInbox(m, func(user string, seq int64, peer string) { inbox.add(user, seq, m.Msg.MsgID, peer) })
	}
	return cols, inbox
}

// scanHeads reads (user_id, seq) rows of the next result of br into heads.
func scanHeads(br pgx.BatchResults, heads map[string]int64) error {
	return scanAll(br, func(r pgx.Rows) error {
		var u string
		var seq int64
		err := r.Scan(&u, &seq)
		heads[u] = seq
		return err
	})
}

// saveOneTrip saves recs in one round trip, assuming none of them was stored before:
// BEGIN, the duplicate lookup, one statement that advances the inbox heads (locking
// them, in user order), inserts the messages and the inbox rows with seqs computed from
// the new heads, and COMMIT. The seqs are handed out in Go over heads at zero first
// (assign), so each user's count and each row's position among that user's new seqs
// are known before the heads are; the statement adds the old head. It reports ok false,
// with the transaction rolled back or aborted, when the batch holds a record stored
// before (the duplicate lookup found it; the insert then failed on a unique index, or
// committed the batch's other records when the found one was a duplicate within the
// batch, which saveTwoTrips then finds too) or one another saver stored meanwhile, and
// when nothing in it is new: saveTwoTrips then saves it. The transaction's locks are
// held only while PostgreSQL runs the statement and commits: no round trip to the saver
// while they are held.
func (s *Postgres) saveOneTrip(ctx context.Context, c *pgx.Conn, recs []message.Record, groups map[string][]string, p *batchPlan) (out []message.Saved, ok bool, err error) {
	if len(p.fresh) == 0 {
		return nil, false, nil
	}
	cols, inbox := rowColumns(p.rel, p.fresh)
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(s.q.findDups, p.ids, p.dupSenders, p.dupKeys)
	b.Queue(s.q.saveAll, p.bump.user, p.bump.n,
		cols.id, cols.sender, cols.receiver, cols.typ, cols.msg, cols.clientID,
		cols.chatMS, cols.extra, cols.conn, cols.node, cols.rseq, cols.sseq, cols.group,
		inbox.user, inbox.seq, inbox.msgID, inbox.peer)
	b.Queue("COMMIT")
	br := c.SendBatch(ctx, b)
	found := 0
	base := make(map[string]int64, len(p.bump.user))
	err = func() error {
		defer br.Close()
		if _, err := br.Exec(); err != nil { // BEGIN
			return err
		}
		if err := scanAll(br, func(r pgx.Rows) error { found++; return nil }); err != nil {
			return err
		}
		if err := scanHeads(br, base); err != nil { // each user's head before the batch
			return err
		}
		if _, err := br.Exec(); err != nil { // COMMIT
			return err
		}
		return br.Close()
	}()
	var pe *pgconn.PgError
	// A duplicate fails on the messages' keys; a conflict on an inbox row would mean heads
	// and inbox disagree, which is an error to report, not a duplicate to look up.
	unique := errors.As(err, &pe) && pe.Code == pgUniqueViolation && pe.TableName == "messages"
	switch {
	case err != nil && !unique:
		return nil, false, err // not about duplicates: the caller retries or gives up
	case found > 0 || unique:
		return nil, false, nil // stored before, or by another saver meanwhile
	case c.PgConn().TxStatus() != 'I':
		return nil, false, errors.New("saver: postgres: transaction still open after COMMIT")
	case len(base) != len(p.bump.user):
		return nil, false, fmt.Errorf("saver: postgres: advanced %d inbox heads, want %d", len(base), len(p.bump.user))
	}
	// The same hand-out again over the old heads: the seqs the statement wrote.
	out, _ = assign(recs, nil, base, groups)
	return out, true, nil
}

// pgHeadColumns are the inbox heads a batch advances and by how much, as column arrays
// for unnest.
type pgHeadColumns struct {
	user []string
	n    []int64
}

// saveTwoTrips saves recs, some of which may have been stored before, in two round
// trips: BEGIN, the duplicate lookup and the bump of the inbox heads (which locks them)
// in one pipeline; the inserts, the heads of users whose records were duplicates, and
// COMMIT in the next. The seqs are assigned in Go between the two. A statement that
// fails aborts the transaction, so the pipelined COMMIT does not commit it.
func (s *Postgres) saveTwoTrips(ctx context.Context, c *pgx.Conn, recs []message.Record, groups map[string][]string, p *batchPlan, locked func()) (out []message.Saved, err error) {
	// Round trip 1: begin, find duplicates, and advance the heads as if there were none
	// (the plan's counts): the bump locks every head the batch touches and returns its
	// new value.
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(s.q.findDups, p.ids, p.dupSenders, p.dupKeys)
	if len(p.bump.user) > 0 {
		b.Queue(s.q.bumpHeads, p.bump.user, p.bump.n)
	}
	br := c.SendBatch(ctx, b)
	bumped := make(map[string]int64, len(p.bump.user))
	var found []message.Saved
	err = func() error {
		defer br.Close()
		if _, err := br.Exec(); err != nil { // BEGIN
			return err
		}
		if err := scanAll(br, func(r pgx.Rows) error {
			var mr msgRow
			err := r.Scan(mr.dest()...)
			found = append(found, mr.saved())
			return err
		}); err != nil {
			return err
		}
		if len(p.bump.user) > 0 {
			if err := scanHeads(br, bumped); err != nil {
				return err
			}
		}
		return br.Close()
	}()
	if err != nil {
		return nil, err
	}
	if len(bumped) != len(p.bump.user) {
		return nil, fmt.Errorf("saver: postgres: advanced %d inbox heads, want %d", len(bumped), len(p.bump.user))
	}
	locked()

	// In Go: duplicates (stored before, or earlier in this batch) and seqs, from the
	// heads as they were before the bump. With nothing stored before, every head ends
	// where the bump put it; otherwise the heads the duplicates' users ended at are
	// written back below.
	heads := make(map[string]int64, len(p.counts))
	for u, n := range p.counts {
		heads[u] = bumped[u] - n
	}
	out, fresh := assign(recs, found, heads, groups)
	if len(heads) != len(p.counts) {
		// assign gave seqs to a user the bump did not count: a head not locked or
		// advanced. It cannot happen (a record is new knowing the stored ones only if it
		// was new without them); refuse rather than write seqs no head reserves.
		return nil, fmt.Errorf("saver: postgres: %d users got seqs, %d heads advanced", len(heads), len(p.counts))
	}
	cols, inbox := rowColumns(out, fresh)
	var fixUsers []string
	var fixSeqs []int64
	for _, u := range p.bump.user {
		if heads[u] != bumped[u] {
			fixUsers = append(fixUsers, u)
			fixSeqs = append(fixSeqs, heads[u])
		}
	}

	// Round trip 2: write (nothing new, nothing to write) and commit.
	b = &pgx.Batch{}
	if len(cols.id) > 0 {
		b.Queue(s.q.insMsgs, cols.id, cols.sender, cols.receiver, cols.typ, cols.msg, cols.clientID,
			cols.chatMS, cols.extra, cols.conn, cols.node, cols.rseq, cols.sseq, cols.group)
		b.Queue(s.q.insInbox, inbox.user, inbox.seq, inbox.msgID, inbox.peer)
	}
	if len(fixUsers) > 0 {
		b.Queue(s.q.setHeads, fixUsers, fixSeqs)
	}
	b.Queue("COMMIT")
	br = c.SendBatch(ctx, b)
	for range b.Len() {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if c.PgConn().TxStatus() != 'I' {
		return nil, errors.New("saver: postgres: transaction still open after COMMIT")
	}
	return out, nil
}
