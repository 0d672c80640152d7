package saver_test

import (
	"context"
	"path/filepath"
	"testing"

	"imgate/codec"
	"imgate/message"
	"imgate/saver"
	"imgate/saver/storetest"
)

func openSQLite(t testing.TB, path, sync string) *saver.SQLite {
	t.Helper()
	s, err := saver.OpenSQLite(context.Background(), saver.SQLiteConfig{Path: path, Synchronous: sync})
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSQLite(t *testing.T) {
	for _, sync := range []string{"", "NORMAL"} {
		name := "FULL"
		if sync != "" {
			name = sync
		}
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) saver.Store {
				return openSQLite(t, filepath.Join(t.TempDir(), "imgate.db"), sync)
			})
		})
	}
}

func TestSQLiteReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "imgate.db")
	ctx := context.Background()
	s := openSQLite(t, path, "")
	rec := message.Record{Msg: codec.ChatMsg{SenderID: "a", ReceiverID: "b", Msg: "x", MsgType: codec.Words, MsgID: 1, ClientMsgID: "c1", Extra: []byte(`"k":1`)}}
	if _, err := s.Save(ctx, []message.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSQLite(t, path, "") // migrations are idempotent
	out, err := s.Save(ctx, []message.Record{rec, {Msg: codec.ChatMsg{SenderID: "b", ReceiverID: "a", MsgID: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	// The same record again keeps its stored seq (it is a redelivery, pushed again, not a
	// client's resend); the next message gets the next seqs.
	if out[0].Duplicate || out[0].ReceiverSeq != 1 || out[1].ReceiverSeq != 2 || out[1].SenderSeq != 2 {
		t.Errorf("after reopen: %+v", out)
	}
}

func TestSQLiteConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     saver.SQLiteConfig
		wantErr bool
	}{
		{name: "defaults", cfg: saver.SQLiteConfig{Path: "x.db"}},
		{name: "normal", cfg: saver.SQLiteConfig{Path: "x.db", Synchronous: "normal"}},
		{name: "no path", cfg: saver.SQLiteConfig{}, wantErr: true},
		{name: "bad synchronous", cfg: saver.SQLiteConfig{Path: "x.db", Synchronous: "OFF"}, wantErr: true},
		{name: "query in path", cfg: saver.SQLiteConfig{Path: "x.db?mode=ro"}, wantErr: true},
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
