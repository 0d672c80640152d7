package wire

import (
	"errors"
	"slices"
	"testing"
)

func TestChangeRoundTrip(t *testing.T) {
	in := Change{ID: 1 << 40, Node: "api.7", Groups: []string{"g1", "grüppe"}}
	kind, out, err := DecodeChange(EncodeChange(GroupsChanged, in))
	if err != nil || kind != GroupsChanged || out.ID != in.ID || out.Node != in.Node || !slices.Equal(out.Groups, in.Groups) {
		t.Fatalf("decoded %q %+v %v, want %+v", kind, out, err, in)
	}
	kind, out, err = DecodeChange(EncodeChange(ChangeApplied, Change{ID: 3, Node: "127.0.0.1_8001"}))
	if err != nil || kind != ChangeApplied || out.ID != 3 || out.Node != "127.0.0.1_8001" || len(out.Groups) != 0 {
		t.Fatalf("decoded answer %q %+v %v", kind, out, err)
	}
	if KindOf(EncodeChange(ChangeApplied, out)) != ChangeApplied {
		t.Fatal("KindOf does not see the kind")
	}
}

// A change is refused whole when it is cut, carries a bad id, or is a batch; batches
// refuse the change kinds, so an old decoder never takes one for records.
func TestChangeRefusesBadInput(t *testing.T) {
	good := EncodeChange(GroupsChanged, Change{ID: 9, Node: "api", Groups: []string{"g"}})
	bad := map[string][]byte{
		"empty":        nil,
		"cut":          good[:len(good)-1],
		"trailing":     append(slices.Clone(good), 0),
		"bad group id": EncodeChange(GroupsChanged, Change{ID: 9, Node: "api", Groups: []string{"a\x00b"}}),
		"no node":      EncodeChange(ChangeApplied, Change{ID: 9}),
		"no group":     EncodeChange(GroupsChanged, Change{ID: 9, Node: "api"}),
		"a batch":      Encode(Saved, nil),
		"huge count":   append(good[:len(good)-len("g")-2], 0xff, 0xff, 0x03),
	}
	for name, b := range bad {
		if _, _, err := DecodeChange(b); !errors.Is(err, ErrBatch) {
			t.Errorf("%s: err %v, want ErrBatch", name, err)
		}
	}
	if _, _, _, err := Decode(good); !errors.Is(err, ErrBatch) {
		t.Errorf("a batch decoder took a change: %v", err)
	}
}
