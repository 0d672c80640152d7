package saver

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"imgate/message"
)

// readGroupsTx reads the members of groups in the writer's transaction.
func (s *SQLite) readGroupsTx(ctx context.Context, tx *sql.Tx, groups []string) (map[string][]string, error) {
	if len(groups) == 0 {
		return nil, nil
	}
	ids, err := json.Marshal(groups)
	if err != nil {
		return nil, fmt.Errorf("encode groups: %w", err)
	}
	rows, err := tx.StmtContext(ctx, s.readGroups).QueryContext(ctx, string(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanGroups(rows)
}

// GroupHistory implements [Store.GroupHistory].
func (s *SQLite) GroupHistory(ctx context.Context, userID, groupID string, beforeSeq int64, limit int) ([]message.Entry, error) {
	beforeSeq, err := historyBefore(beforeSeq, limit)
	if err != nil {
		return nil, err
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	rows, err := s.historyGroup.QueryContext(ctx, userID, groupID, beforeSeq, limit)
	return s.entries("group history", rows, err, limit)
}

// PutGroup implements [Store.PutGroup].
func (s *SQLite) PutGroup(ctx context.Context, groupID string, members []string) ([]string, error) {
	members, err := normalizeMembers(groupID, members)
	if err != nil {
		return nil, err
	}
	err = s.groupTx(ctx, "put group", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO chat_groups (group_id) VALUES (?)`, groupID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = ?`, groupID); err != nil {
			return err
		}
		return s.insertMembers(ctx, tx, groupID, members)
	})
	if err != nil {
		return nil, err
	}
	return members, nil
}

// insertMembers adds users to groupID (those already members are left alone).
func (s *SQLite) insertMembers(ctx context.Context, tx *sql.Tx, groupID string, users []string) error {
	if len(users) == 0 {
		return nil
	}
	j, err := json.Marshal(users)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO group_members (group_id, user_id) SELECT ?, value FROM json_each(?)`, groupID, string(j))
	return err
}

// Group implements [Store.Group].
func (s *SQLite) Group(ctx context.Context, groupID string) ([]string, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var n int
	if err := s.groupExists.QueryRowContext(ctx, groupID).Scan(&n); err != nil {
		return nil, s.fail("group", err)
	}
	if n == 0 {
		return nil, message.ErrUnknownGroup
	}
	rows, err := s.groupMembers.QueryContext(ctx, groupID)
	if err != nil {
		return nil, s.fail("group", err)
	}
	defer rows.Close()
	members := []string{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, s.fail("group", err)
		}
		members = append(members, u)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("group", err)
	}
	return members, nil
}

// UpdateGroup implements [Store.UpdateGroup].
func (s *SQLite) UpdateGroup(ctx context.Context, groupID string, add, remove []string, maxMembers int) ([]string, error) {
	add, err := normalizeMembers(groupID, add)
	if err != nil {
		return nil, err
	}
	var members []string
	err = s.groupTx(ctx, "update group", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT g.group_id, m.user_id FROM chat_groups g
			LEFT JOIN group_members m ON m.group_id = g.group_id WHERE g.group_id = ? ORDER BY m.user_id`, groupID)
		if err != nil {
			return err
		}
		groups, err := scanGroups(rows)
		_ = rows.Close()
		if err != nil {
			return err
		}
		old, ok := groups[groupID]
		if !ok {
			return message.ErrUnknownGroup
		}
		if members, err = applyChange(old, add, remove, maxMembers); err != nil {
			return err
		}
		if err := s.insertMembers(ctx, tx, groupID, add); err != nil {
			return err
		}
		if len(remove) > 0 {
			j, err := json.Marshal(remove)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = ? AND user_id IN (SELECT value FROM json_each(?))`, groupID, string(j))
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return members, nil
}

// DeleteGroup implements [Store.DeleteGroup].
func (s *SQLite) DeleteGroup(ctx context.Context, groupID string) error {
	return s.groupTx(ctx, "delete group", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM chat_groups WHERE group_id = ?`, groupID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return err
			}
			return message.ErrUnknownGroup
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = ?`, groupID)
		return err
	})
}

// groupTx runs fn in a transaction on the writer (serialized with Save). Errors of the
// group contract (message.ErrUnknownGroup, message.ErrGroupFull) come back as they are.
func (s *SQLite) groupTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.fail(op, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		if isGroupErr(err) {
			return err
		}
		return s.fail(op, err)
	}
	if err := tx.Commit(); err != nil {
		return s.fail(op, err)
	}
	return nil
}
