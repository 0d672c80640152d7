package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// CursorStore keeps a device's cursor: the highest inbox seq its app has handled
// (PROTOCOL §5), sent as cursor in CONNECT_INIT so that the node replays what came after.
// The Client calls Load once, at its first connection, and Save from its handler goroutine
// after OnMessage returns (never concurrently). A Save that fails is logged and retried
// with the next message; the cost is a longer replay, never a loss.
type CursorStore interface {
	// Load returns the stored cursor; ok is false when nothing was ever stored (a new device).
	Load() (seq int64, ok bool, err error)
	// Save stores seq. It may be lower than the stored value: the node reset its store
	// (cursorAhead) and the Client starts over.
	Save(seq int64) error
}

// MemoryCursor is a CursorStore in memory: the cursor lives as long as the value. The zero
// value holds nothing.
type MemoryCursor struct {
	mu  sync.Mutex
	seq int64
	ok  bool
}

var _ CursorStore = (*MemoryCursor)(nil)

// Load implements CursorStore.
func (m *MemoryCursor) Load() (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seq, m.ok, nil
}

// Save implements CursorStore.
func (m *MemoryCursor) Save(seq int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq, m.ok = seq, true
	return nil
}

// FileCursor is a CursorStore in a file holding the cursor as decimal text. Save writes a
// temporary file beside it and renames it over the old one, so a crash leaves either the
// old or the new cursor, never a torn one. It does not fsync: after a power loss the
// cursor may be older, which costs a longer replay (and OnMessage may see messages again
// that it handled before the loss), never a lost message. One file per user and device.
type FileCursor struct {
	Path string
}

var _ CursorStore = FileCursor{}

// Load implements CursorStore: a missing file is a new device.
func (f FileCursor) Load() (int64, bool, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("client: cursor file: %w", err)
	}
	seq, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || seq < 0 {
		return 0, false, fmt.Errorf("client: cursor file %s: not a seq: %q", f.Path, b)
	}
	return seq, true, nil
}

// Save implements CursorStore.
func (f FileCursor) Save(seq int64) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), filepath.Base(f.Path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("client: cursor file: %w", err)
	}
	_, err = tmp.WriteString(strconv.FormatInt(seq, 10) + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.Path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("client: cursor file: %w", err)
	}
	return nil
}
