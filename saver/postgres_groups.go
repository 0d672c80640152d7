package saver

import (
	"context"

	"github.com/jackc/pgx/v5"

	"imgate/message"
)

// GroupHistory implements [Store.GroupHistory].
func (s *Postgres) GroupHistory(ctx context.Context, userID, groupID string, beforeSeq int64, limit int) ([]message.Entry, error) {
	beforeSeq, err := historyBefore(beforeSeq, limit)
	if err != nil {
		return nil, err
	}
	return s.entries(ctx, "group history", limit, s.q.historyGroup, userID, groupID, beforeSeq, limit)
}

// PutGroup implements [Store.PutGroup].
func (s *Postgres) PutGroup(ctx context.Context, groupID string, members []string) ([]string, error) {
	members, err := normalizeMembers(groupID, members)
	if err != nil {
		return nil, err
	}
	err = s.groupTx(ctx, "put group", func(tx pgx.Tx, q pgGroupQueries) error {
		if _, err := tx.Exec(ctx, q.create, groupID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, q.lock, groupID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, q.clear, groupID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, q.add, groupID, members)
		return err
	})
	if err != nil {
		return nil, err
	}
	return members, nil
}

// Group implements [Store.Group].
func (s *Postgres) Group(ctx context.Context, groupID string) ([]string, error) {
	var members []string
	err := s.groupTx(ctx, "group", func(tx pgx.Tx, _ pgGroupQueries) error {
		var err error
		members, err = s.readGroupTx(ctx, tx, groupID)
		return err
	})
	return members, err
}

// readGroupTx returns groupID's sorted members, message.ErrUnknownGroup when it does not exist.
func (s *Postgres) readGroupTx(ctx context.Context, tx pgx.Tx, groupID string) ([]string, error) {
	rows, err := tx.Query(ctx, s.q.readGroups, []string{groupID})
	if err != nil {
		return nil, err
	}
	groups, err := scanGroups(rows)
	rows.Close()
	if err != nil {
		return nil, err
	}
	members, ok := groups[groupID]
	if !ok {
		return nil, message.ErrUnknownGroup
	}
	if members == nil {
		members = []string{}
	}
	return members, nil
}

// UpdateGroup implements [Store.UpdateGroup]: the group's row is locked, so concurrent
// changes of one group apply one after the other and the limit holds.
func (s *Postgres) UpdateGroup(ctx context.Context, groupID string, add, remove []string, maxMembers int) ([]string, error) {
	add, err := normalizeMembers(groupID, add)
	if err != nil {
		return nil, err
	}
	if remove == nil {
		remove = []string{}
	}
	var members []string
	err = s.groupTx(ctx, "update group", func(tx pgx.Tx, q pgGroupQueries) error {
		tag, err := tx.Exec(ctx, q.lock, groupID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return message.ErrUnknownGroup
		}
		old, err := s.readGroupTx(ctx, tx, groupID)
		if err != nil {
			return err
		}
		if members, err = applyChange(old, add, remove, maxMembers); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, q.add, groupID, add); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, q.remove, groupID, remove)
		return err
	})
	if err != nil {
		return nil, err
	}
	return members, nil
}

// DeleteGroup implements [Store.DeleteGroup].
func (s *Postgres) DeleteGroup(ctx context.Context, groupID string) error {
	return s.groupTx(ctx, "delete group", func(tx pgx.Tx, q pgGroupQueries) error {
		tag, err := tx.Exec(ctx, q.drop, groupID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return message.ErrUnknownGroup
		}
		_, err = tx.Exec(ctx, q.clear, groupID)
		return err
	})
}

// pgGroupQueries are the statements of the group changes, with the schema filled in.
type pgGroupQueries struct{ create, lock, clear, add, remove, drop string }

func (s *Postgres) groupQueries() pgGroupQueries {
	sch := s.q.schema
	return pgGroupQueries{
		create: `INSERT INTO ` + sch + `.chat_groups (group_id) VALUES ($1) ON CONFLICT DO NOTHING`,
		lock:   `SELECT 1 FROM ` + sch + `.chat_groups WHERE group_id = $1 FOR UPDATE`,
		clear:  `DELETE FROM ` + sch + `.group_members WHERE group_id = $1`,
		add: `INSERT INTO ` + sch + `.group_members (group_id, user_id) SELECT $1, u FROM unnest($2::text[]) AS u
			ON CONFLICT DO NOTHING`,
		remove: `DELETE FROM ` + sch + `.group_members WHERE group_id = $1 AND user_id = ANY($2::text[])`,
		drop:   `DELETE FROM ` + sch + `.chat_groups WHERE group_id = $1`,
	}
}

// groupTx runs fn in a transaction; errors of the group contract come back as they are.
func (s *Postgres) groupTx(ctx context.Context, op string, fn func(tx pgx.Tx, q pgGroupQueries) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	c, err := s.pool.acquire(ctx)
	if err != nil {
		return s.fail(op, err)
	}
	defer s.pool.release(c)
	err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error { return fn(tx, s.groupQueries()) })
	if err == nil || isGroupErr(err) {
		return err
	}
	return s.fail(op, err)
}
