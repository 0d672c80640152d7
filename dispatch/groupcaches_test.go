package dispatch

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"imgate/message"
)

// fakeGroups is a membership store of one level: group → members.
type fakeGroups struct {
	mu sync.Mutex
	m  map[string][]string
}

func (f *fakeGroups) PutGroup(_ context.Context, id string, members []string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[id] = members
	return members, nil
}

func (f *fakeGroups) Group(_ context.Context, id string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.m[id]
	if !ok {
		return nil, message.ErrUnknownGroup
	}
	return m, nil
}

func (f *fakeGroups) UpdateGroup(ctx context.Context, id string, add, _ []string, _ int) ([]string, error) {
	m, err := f.Group(ctx, id)
	if err != nil {
		return nil, err
	}
	return f.PutGroup(ctx, id, append(slices.Clone(m), add...))
}

func (f *fakeGroups) DeleteGroup(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.m[id]; !ok {
		return message.ErrUnknownGroup
	}
	delete(f.m, id)
	return nil
}

func (f *fakeGroups) GroupHistory(context.Context, string, string, int64, int) ([]message.Entry, error) {
	return nil, nil
}

// failingGroups fails every change after storing it (a timeout around the commit).
type failingGroups struct{ *fakeGroups }

func (f failingGroups) PutGroup(ctx context.Context, id string, members []string) ([]string, error) {
	_, _ = f.fakeGroups.PutGroup(ctx, id, members)
	return nil, context.DeadlineExceeded
}

// recordingCaches records the invalidations with the membership stored at that moment.
type recordingCaches struct {
	groups *fakeGroups
	err    error
	mu     sync.Mutex
	seen   []string
}

func (r *recordingCaches) Invalidate(ctx context.Context, id string) error {
	m, _ := r.groups.Group(ctx, id)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, id+"="+strings.Join(m, ","))
	return r.err
}

// Every route that changes a group tells the nodes' caches after the change is stored
// and before it answers; a read does not; caches that do not confirm do not fail a
// change that is stored.
func TestGroupRoutesInvalidateTheNodeCaches(t *testing.T) {
	g := &fakeGroups{m: map[string][]string{}}
	caches := &recordingCaches{groups: g}
	ts := startServer(t, Config{APIKey: testAPIKey}, Deps{Nodes: testNodes, Groups: g, GroupCaches: caches})
	call := func(method, path, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, ts.base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	steps := []struct{ method, path, body string }{
		{"PUT", "/api/v1/groups/team", `{"members":["a"]}`},
		{"GET", "/api/v1/groups/team", ""},
		{"POST", "/api/v1/groups/team/members", `{"add":["b"]}`},
		{"DELETE", "/api/v1/groups/team", ""},
		{"DELETE", "/api/v1/groups/team", ""}, // 404: nothing changed
	}
	for i, st := range steps {
		if i == 2 {
			caches.err = errors.New("node 127.0.0.1_9 did not answer")
		}
		want := 200
		if i == 4 {
			want = 404
		}
		if got := call(st.method, st.path, st.body); got != want {
			t.Fatalf("%s %s: %d, want %d", st.method, st.path, got, want)
		}
	}
	want := []string{"team=a", "team=a,b", "team="}
	if !slices.Equal(caches.seen, want) {
		t.Fatalf("invalidations %q, want %q (after each stored change, none for reads or refusals)", caches.seen, want)
	}

	// A change whose outcome is unknown (503) is announced too: it may be stored.
	f := failingGroups{&fakeGroups{m: map[string][]string{}}}
	caches2 := &recordingCaches{groups: f.fakeGroups}
	ts2 := startServer(t, Config{APIKey: testAPIKey}, Deps{Nodes: testNodes, Groups: f, GroupCaches: caches2})
	ts = ts2
	if got := call("PUT", "/api/v1/groups/t2", `{"members":["z"]}`); got != 503 {
		t.Fatalf("PUT that times out: %d, want 503", got)
	}
	if want := []string{"t2=z"}; !slices.Equal(caches2.seen, want) {
		t.Fatalf("invalidations %q, want %q", caches2.seen, want)
	}
}
