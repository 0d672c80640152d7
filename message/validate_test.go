package message

import (
	"errors"
	"strings"
	"testing"

	"imgate/codec"
)

func TestValidateReceiverGroupBroadcast(t *testing.T) {
	rec := func(receiver, group string, broadcast bool) *Record {
		return &Record{Msg: codec.ChatMsg{MsgID: 1, SenderID: "s", ReceiverID: receiver, GroupID: group, Msg: "x"}, Broadcast: broadcast}
	}
	tests := []struct {
		name string
		r    *Record
		ok   bool
	}{
		{"one-to-one", rec("r", "", false), true},
		{"group", rec("", "g", false), true},
		{"both", rec("r", "g", false), false},
		{"neither", rec("", "", false), false},
		{"broadcast", rec("", "", true), true},
		{"broadcast with a receiver", rec("r", "", true), false},
		{"broadcast to a group", rec("", "g", true), false},
		{"group id too long", rec("", strings.Repeat("g", MaxUserID+1), false), false},
		{"group id with NUL", rec("", "a\x00b", false), false},
	}
	for _, tt := range tests {
		err := tt.r.Validate()
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate() = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	for id, ok := range map[string]bool{"alice": true, "": false, "a\x00": false, "\xff": false,
		strings.Repeat("a", MaxUserID): true, strings.Repeat("a", MaxUserID+1): false} {
		if ValidID(id) != ok {
			t.Errorf("ValidID(%q) = %v, want %v", id, !ok, ok)
		}
	}
}
