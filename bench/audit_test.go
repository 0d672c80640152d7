package bench

import "testing"

func TestAuditReconcile(t *testing.T) {
	type msg struct {
		state     uint32
		expected  uint64
		deliver   []uint64 // device bits delivered, in order (repeats are duplicates)
		droppedOf uint64
	}
	tests := []struct {
		name string
		msgs []msg
		want Audit
	}{
		{
			name: "all delivered once",
			msgs: []msg{{state: msgAcked, expected: 0b1, deliver: []uint64{0b1}}, {state: msgAcked, expected: 0b11, deliver: []uint64{0b10, 0b1}}},
			want: Audit{Acked: 2, Expected: 3, Delivered: 3},
		},
		{
			name: "one lost, one duplicated",
			msgs: []msg{{state: msgAcked, expected: 0b11 | 1<<32, deliver: []uint64{0b1, 0b1, 1 << 32}}},
			want: Audit{Acked: 1, Expected: 3, Delivered: 2, Lost: 1, Duplicated: 1},
		},
		{
			name: "missing device dropped is excluded, not lost",
			msgs: []msg{{state: msgAcked, expected: 0b111, deliver: []uint64{0b1}, droppedOf: 0b110}},
			want: Audit{Acked: 1, Expected: 3, Delivered: 1, ExcludedDropped: 2},
		},
		{
			name: "delivered to a device that was dropped still counts delivered",
			msgs: []msg{{state: msgAcked, expected: 0b1, deliver: []uint64{0b1}, droppedOf: 0b1}},
			want: Audit{Acked: 1, Expected: 1, Delivered: 1},
		},
		{
			name: "unacked and refused",
			msgs: []msg{
				{state: msgSent, expected: 0b1},
				{state: msgSent, expected: 0b1, deliver: []uint64{0b1}},
				{state: msgRefused, expected: 0b1},
			},
			want: Audit{Unacked: 2, UnackedDelivered: 1},
		},
		{
			name: "delivery to a device not online at send time",
			msgs: []msg{{state: msgAcked, expected: 0b1, deliver: []uint64{0b1, 0b10}}},
			want: Audit{Acked: 1, Expected: 1, Delivered: 1, Unexpected: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tab msgTable
			dropped := map[*msgRec]uint64{}
			for _, m := range tc.msgs {
				_, r, ok := tab.add()
				if !ok {
					t.Fatal("table full")
				}
				r.expected = m.expected
				r.state.Store(msgSent)
				for _, b := range m.deliver {
					r.deliver(b)
				}
				r.state.Store(m.state)
				dropped[r] = m.droppedOf
			}
			got := tab.reconcile(func(r *msgRec) uint64 { return dropped[r] }, nil)
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestMsgTableGrowsAcrossChunks(t *testing.T) {
	var tab msgTable
	for i := 0; i < chunkSize+10; i++ {
		idx, r, ok := tab.add()
		if !ok || idx != uint64(i) {
			t.Fatalf("add %d: idx %d ok %v", i, idx, ok)
		}
		r.sendNanos = int64(i)
	}
	if r := tab.at(chunkSize + 5); r == nil || r.sendNanos != chunkSize+5 {
		t.Fatalf("at(chunkSize+5) = %+v", r)
	}
	if tab.at(chunkSize+10) != nil {
		t.Fatal("at past the end must be nil")
	}
}

// TestGroupAuditPerMember feeds group deliveries through the reader's bookkeeping
// (onGroupDelivery) and checks that the audit finds a member that missed a message, a
// duplicate, a delivery outside the group, and excludes a member whose connection dropped.
func TestGroupAuditPerMember(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Scenario, cfg.GroupSize, cfg.Groups, cfg.Users, cfg.UserPrefix = ScenarioGroups, 4, 2, 8, "ga"
	w := newWorker(cfg, nil)
	for _, c := range w.conns {
		c.state.Store(stBound)
	}
	// Group 1 is users 4..7; user 5 sends, so 4, 6 and 7 are expected.
	_, r, _ := w.msgs.add()
	r.sender, r.receiver, r.grp = 5, -1, newGroupMask(4, 4)
	r.grp.exp[0] = 0b1101
	r.state.Store(msgAcked)
	w.onGroupDelivery(w.conns[4], r)
	w.onGroupDelivery(w.conns[7], r)
	w.onGroupDelivery(w.conns[7], r) // a duplicate
	w.onGroupDelivery(w.conns[0], r) // not a member
	w.onGroupDelivery(w.conns[5], r) // the sending connection
	if got := w.misrouted.Load(); got != 2 {
		t.Fatalf("misrouted %d, want 2", got)
	}
	got := w.msgs.reconcile(w.droppedMask, w.connDropped)
	want := Audit{Acked: 1, Expected: 3, Delivered: 2, Lost: 1, Duplicated: 1, LossyDevices: 1}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	// The member that missed it dropped during the run: excluded, not lost.
	w.conns[6].state.Store(stDropped)
	got = w.msgs.reconcile(w.droppedMask, w.connDropped)
	want = Audit{Acked: 1, Expected: 3, Delivered: 2, ExcludedDropped: 1, Duplicated: 1}
	if got != want {
		t.Fatalf("after drop: got %+v\nwant %+v", got, want)
	}
}
