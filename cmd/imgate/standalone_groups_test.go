package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// apiCall sends one server API request and decodes the §1 answer.
func apiCall(t *testing.T, method, url, key string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: answer %q is not JSON: %v", method, url, raw, err)
	}
	if (resp.StatusCode == 200) != (out["success"] == true) || out["status"] != float64(resp.StatusCode) {
		t.Fatalf("%s %s: status %d but envelope %s", method, url, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// expectError reads the next envelope of w: an ERROR with code and clientMsgId.
func (w *wsClient) expectError(who, code, clientMsgID string) {
	w.t.Helper()
	var env struct {
		ChatMsg map[string]any    `json:"chatMsg"`
		Error   map[string]string `json:"error"`
	}
	if err := w.c.ReadJSON(&env); err != nil {
		w.t.Fatalf("%s: read: %v", who, err)
	}
	if env.ChatMsg["msgType"] != float64(12) || env.Error["code"] != code || (clientMsgID != "" && env.ChatMsg["clientMsgId"] != clientMsgID) {
		w.t.Fatalf("%s got %v %v, want ERROR %s for %q", who, env.ChatMsg, env.Error, code, clientMsgID)
	}
}

// expectNothing checks that w has no frame pending: a KEEPALIVE's answer comes next.
func (w *wsClient) expectNothing(who string) {
	w.t.Helper()
	w.send(map[string]any{"chatMsg": map[string]any{"msgType": 9}})
	if cm := w.read(); cm["msgType"] != float64(9) {
		w.t.Fatalf("%s got %v, want nothing before the KEEPALIVE answer", who, cm)
	}
}

// expectGroupMsg reads the next frame of w: the group message text from sender, with
// groupId and a seq above *last (which it advances).
func (w *wsClient) expectGroupMsg(who, group, sender, text string, last *float64) map[string]any {
	w.t.Helper()
	cm := w.read()
	seq, _ := cm["seq"].(float64)
	if cm["msgType"] != float64(1) || cm["groupId"] != group || cm["senderId"] != sender || cm["msg"] != text || cm["receiverId"] != nil || seq <= *last {
		w.t.Fatalf("%s got %v, want %q from %s in group %s with a seq above %v", who, cm, text, sender, group, *last)
	}
	*last = seq
	return cm
}

func TestStandaloneGroupsOverWebSocket(t *testing.T) {
	const key = "groups-api-key-0123456789"
	t.Setenv("IMGATE_API_KEY", key)
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "sqlite",
		"--data-dir", t.TempDir(), "--max-group-members", "4")
	api := p.HTTP + "/api/v1"

	// The server API answers only the key.
	if st, _ := apiCall(t, "PUT", api+"/groups/team", "", map[string]any{"members": []string{"alice"}}); st != 401 {
		t.Fatalf("PUT without key: %d, want 401", st)
	}
	if st, _ := apiCall(t, "GET", api+"/groups/team", "wrong", nil); st != 401 {
		t.Fatalf("GET with a wrong key: %d, want 401", st)
	}
	if st, _ := apiCall(t, "GET", api+"/groups/team", key, nil); st != 404 {
		t.Fatalf("GET of an unknown group: %d, want 404", st)
	}
	if st, _ := apiCall(t, "PUT", api+"/groups/team", key, map[string]any{"members": []string{"a", "b", "c", "d", "e"}}); st != 400 {
		t.Fatalf("PUT over --max-group-members: %d, want 400", st)
	}
	if st, _ := apiCall(t, "PUT", api+"/groups/team", key, map[string]any{"members": []string{""}}); st != 400 {
		t.Fatalf("PUT with an empty member id: %d, want 400", st)
	}
	st, ans := apiCall(t, "PUT", api+"/groups/team", key, map[string]any{"members": []string{"carol", "alice", "bob"}})
	if data, _ := ans["data"].(map[string]any); st != 200 || data["groupId"] != "team" || len(data["members"].([]any)) != 3 {
		t.Fatalf("PUT: %d %v", st, ans)
	}

	ws := p.WS
	alice1, _, _ := dialUser(t, ws, "alice", 0)
	alice2, _, _ := dialUser(t, ws, "alice", 0)
	bob, _, _ := dialUser(t, ws, "bob", 0)
	carol, _, _ := dialUser(t, ws, "carol", 0)
	mallory, _, _ := dialUser(t, ws, "mallory", 0)
	var seqA1, seqA2, seqB, seqC, seqM float64

	// A member's message reaches every device of every member but the sending one.
	alice1.send(map[string]any{"chatMsg": map[string]any{"senderId": "alice", "groupId": "team", "msgType": 1, "msg": "hello team", "clientMsgId": "a-1"}})
	ack := alice1.read()
	if ack["msgType"] != float64(11) || ack["msgId"] == nil || ack["clientMsgId"] != "a-1" || ack["groupId"] != "team" {
		t.Fatalf("alice1 got %v, want the ACK", ack)
	}
	alice2.expectGroupMsg("alice2", "team", "alice", "hello team", &seqA2)
	bob.expectGroupMsg("bob", "team", "alice", "hello team", &seqB)
	carol.expectGroupMsg("carol", "team", "alice", "hello team", &seqC)
	alice1.expectNothing("alice1 (the sender)")
	mallory.expectNothing("mallory (not a member)")

	// A non-member is refused.
	mallory.send(map[string]any{"chatMsg": map[string]any{"senderId": "mallory", "groupId": "team", "msgType": 1, "msg": "let me in", "clientMsgId": "m-1"}})
	mallory.expectError("mallory", "forbidden", "m-1")
	for name, w := range map[string]*wsClient{"alice1": alice1, "alice2": alice2, "bob": bob, "carol": carol} {
		w.expectNothing(name)
	}

	// Membership changes apply to the next message: mallory in, carol out; over the limit is 400.
	if st, _ := apiCall(t, "POST", api+"/groups/team/members", key, map[string]any{"add": []string{"x", "y"}}); st != 400 {
		t.Fatalf("adding past the limit: %d, want 400", st)
	}
	st, ans = apiCall(t, "POST", api+"/groups/team/members", key, map[string]any{"add": []string{"mallory"}, "remove": []string{"carol"}})
	if data, _ := ans["data"].(map[string]any); st != 200 || strings.Join(toStrings(data["members"]), ",") != "alice,bob,mallory" {
		t.Fatalf("POST members: %d %v", st, ans)
	}
	mallory.send(map[string]any{"chatMsg": map[string]any{"senderId": "mallory", "groupId": "team", "msgType": 1, "msg": "thanks", "clientMsgId": "m-1"}})
	if a := mallory.read(); a["msgType"] != float64(11) || a["msgId"] == nil {
		t.Fatalf("mallory got %v, want the ACK once a member", a)
	}
	alice1.expectGroupMsg("alice1", "team", "mallory", "thanks", &seqA1)
	alice2.expectGroupMsg("alice2", "team", "mallory", "thanks", &seqA2)
	bob.expectGroupMsg("bob", "team", "mallory", "thanks", &seqB)
	carol.expectNothing("carol (removed)")

	// Send as system: persisted, seq'd, delivered like a member's message; idempotent.
	sys := map[string]any{"senderId": "system", "groupId": "team", "msgType": 1, "msg": "maintenance", "clientMsgId": "s-1"}
	st, ans = apiCall(t, "POST", api+"/messages", key, sys)
	data, _ := ans["data"].(map[string]any)
	if st != 200 || data["msgId"] == nil || data["chatTime"] == nil {
		t.Fatalf("POST /messages: %d %v", st, ans)
	}
	for name, w := range map[string]*wsClient{"alice1": alice1, "alice2": alice2, "bob": bob} {
		last := map[string]*float64{"alice1": &seqA1, "alice2": &seqA2, "bob": &seqB}[name]
		if cm := w.expectGroupMsg(name, "team", "system", "maintenance", last); cm["msgId"] != data["msgId"] {
			t.Fatalf("%s got msgId %v, the API answered %v", name, cm["msgId"], data["msgId"])
		}
	}
	mallory.expectGroupMsg("mallory", "team", "system", "maintenance", &seqM)
	if st, again := apiCall(t, "POST", api+"/messages", key, sys); st != 200 || again["data"].(map[string]any)["msgId"] != data["msgId"] {
		t.Fatalf("resend: %d %v, want msgId %v", st, again, data["msgId"])
	}
	bob.expectNothing("bob (a resend is delivered to nobody)")
	st, ans = apiCall(t, "POST", api+"/messages", key, map[string]any{"senderId": "system", "receiverId": "carol", "msgType": 1, "msg": "just you"})
	if st != 200 {
		t.Fatalf("POST /messages to a user: %d %v", st, ans)
	}
	if cm := carol.read(); cm["senderId"] != "system" || cm["receiverId"] != "carol" || cm["msg"] != "just you" || cm["seq"] != seqC+1 {
		t.Fatalf("carol got %v", cm)
	}
	for _, bad := range []map[string]any{
		{"senderId": "system", "groupId": "ghost", "msgType": 1, "msg": "x"},
		{"senderId": "system", "groupId": "team", "receiverId": "bob", "msgType": 1, "msg": "x"},
		{"senderId": "system", "receiverId": "bob", "msgType": 8, "msg": "x"},
		{"senderId": "", "receiverId": "bob", "msgType": 1, "msg": "x"},
	} {
		want := 400
		if bad["groupId"] == "ghost" {
			want = 404
		}
		if st, ans := apiCall(t, "POST", api+"/messages", key, bad); st != want {
			t.Fatalf("POST /messages %v: %d %v, want %d", bad, st, ans, want)
		}
	}

	// A broadcast reaches every connected device once, without a seq.
	st, ans = apiCall(t, "POST", api+"/broadcast", key, map[string]any{"senderId": "system", "msgType": 1, "msg": "to everyone"})
	if st != 200 {
		t.Fatalf("POST /broadcast: %d %v", st, ans)
	}
	for name, w := range map[string]*wsClient{"alice1": alice1, "alice2": alice2, "bob": bob, "carol": carol, "mallory": mallory} {
		if cm := w.read(); cm["msg"] != "to everyone" || cm["seq"] != nil || cm["msgId"] != ans["data"].(map[string]any)["msgId"] {
			t.Fatalf("%s got %v, want the broadcast", name, cm)
		}
		w.expectNothing(name + " (after the broadcast)")
	}

	// A device replaying from cursor 0 gets the group messages in seq order with groupId.
	_, replay, init := dialUser(t, ws, "bob", 0)
	var texts []string
	prev := 0.0
	for _, cm := range replay {
		if s := cm["seq"].(float64); s <= prev {
			t.Fatalf("replay seqs not increasing: %v after %v", s, prev)
		} else {
			prev = s
		}
		if cm["groupId"] != "team" {
			t.Fatalf("replayed %v without groupId team", cm)
		}
		texts = append(texts, cm["msg"].(string))
	}
	if strings.Join(texts, "|") != "hello team|thanks|maintenance" || init["seq"] != seqB {
		t.Fatalf("bob replays %q up to %v, want the three group messages up to %v", texts, init["seq"], seqB)
	}

	// History per group, newest first.
	st, ans = apiCall(t, "GET", api+"/messages?userId=alice&groupId=team", key, nil)
	msgs, _ := ans["data"].(map[string]any)["messages"].([]any)
	if st != 200 || len(msgs) != 3 || msgs[0].(map[string]any)["msg"] != "maintenance" || msgs[0].(map[string]any)["groupId"] != "team" {
		t.Fatalf("group history: %d %v", st, ans)
	}

	if st, _ := apiCall(t, "DELETE", api+"/groups/team", key, nil); st != 200 {
		t.Fatalf("DELETE: %d", st)
	}
	if st, _ := apiCall(t, "DELETE", api+"/groups/team", key, nil); st != 404 {
		t.Fatalf("DELETE twice: %d, want 404", st)
	}
	alice1.send(map[string]any{"chatMsg": map[string]any{"senderId": "alice", "groupId": "team", "msgType": 1, "msg": "anyone?"}})
	alice1.expectError("alice1 (deleted group)", "forbidden", "")
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
