package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"imgate/cluster/bus/wire"
	"imgate/cluster/clustertest"
)

// TestClusterGroupOneMessagePerNode runs saver (routed delivery), dispatcher and two
// nodes: alice and bob on node 1, carol, dave and alice's second device on node 2. A
// group message reaches every member's devices across nodes, and the saver publishes it
// to each node once — one AMQP message per node, carrying only that node's members —
// which the test sees on its own queues bound to the route exchange with the nodes'
// keys. The server API of the dispatcher creates the group, sends as system (persisted
// through the save queue and answered after persistence) and broadcasts; a member it
// adds or removes is let in or refused at the very next message, on a node that had
// the group cached.
func TestClusterGroupOneMessagePerNode(t *testing.T) {
	const key = "cluster-groups-api-key-0123"
	t.Setenv("IMGATE_API_KEY", key)
	c := clustertest.NewCluster(t, binPath)
	c.StartSaver()
	disp := c.StartDispatch()
	nodes := c.StartNodes(2)
	api := disp.HTTP + "/api/v1"

	// Copies of what the route exchange sends each node.
	ch, err := c.Svc.AMQP.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ch.Close() }()
	taps := make([]string, len(nodes))
	for i, n := range nodes {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(q.Name, "127.0.0.1_"+strconv.Itoa(n.Port), c.NS+".route", false, nil); err != nil {
			t.Fatal(err)
		}
		taps[i] = q.Name
	}

	if st, ans := apiCall(t, "PUT", api+"/groups/team", key, map[string]any{"members": []string{"alice", "bob", "carol", "dave"}}); st != 200 {
		t.Fatalf("PUT group on the dispatcher: %d %v", st, ans)
	}
	alice1, _, _ := dialUser(t, nodes[0].WS, "alice", 0)
	bob, _, _ := dialUser(t, nodes[0].WS, "bob", 0)
	carol, _, _ := dialUser(t, nodes[1].WS, "carol", 0)
	dave, _, _ := dialUser(t, nodes[1].WS, "dave", 0)
	alice2, _, _ := dialUser(t, nodes[1].WS, "alice", 0)
	nodesOf := func(u string) int {
		_, ans := apiCall(t, "GET", api+"/presence?userId="+u, key, nil)
		data, _ := ans["data"].(map[string]any)
		ns, _ := data["nodes"].(map[string]any)
		return len(ns)
	}
	clustertest.WaitFor(t, 10*time.Second, "presence shows every member (alice on both nodes)", func() bool {
		return nodesOf("alice") == 2 && nodesOf("bob") == 1 && nodesOf("carol") == 1 && nodesOf("dave") == 1
	})
	var sA1, sA2, sB, sC, sD float64

	alice1.send(map[string]any{"chatMsg": map[string]any{"senderId": "alice", "groupId": "team", "msgType": 1, "msg": "hello nodes", "clientMsgId": "g-1"}})
	ack := alice1.read()
	if ack["msgType"] != float64(11) || ack["msgId"] == nil {
		t.Fatalf("alice1 got %v, want the ACK", ack)
	}
	msgID, _ := strconv.ParseInt(ack["msgId"].(string), 10, 64)
	bob.expectGroupMsg("bob", "team", "alice", "hello nodes", &sB)
	carol.expectGroupMsg("carol", "team", "alice", "hello nodes", &sC)
	dave.expectGroupMsg("dave", "team", "alice", "hello nodes", &sD)
	alice2.expectGroupMsg("alice2", "team", "alice", "hello nodes", &sA2)
	alice1.expectNothing("alice1 (the sender)")

	// Published before it was delivered: every copy is in the taps now.
	want := [][]string{{"alice", "bob"}, {"alice", "carol", "dave"}}
	for i, q := range taps {
		messages, members := 0, [][]string{}
		for {
			d, ok, err := ch.Get(q, true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			found := false
			_, recs, _, _ := wire.Decode(d.Body)
			for _, r := range recs {
				if r.Msg.MsgID == msgID {
					found = true
					var us []string
					for _, m := range r.Members {
						us = append(us, m.User)
					}
					members = append(members, us)
				}
			}
			if found {
				messages++
			}
		}
		if messages != 1 || len(members) != 1 || !slices.Equal(members[0], want[i]) {
			t.Fatalf("node %d: the group message came in %d AMQP messages with members %v, want 1 with %v", i+1, messages, members, want[i])
		}
	}

	// Send as system through the dispatcher: persisted via the save queue, then answered.
	st, ans := apiCall(t, "POST", api+"/messages", key, map[string]any{"senderId": "system", "groupId": "team", "msgType": 1, "msg": "from the backend"})
	if st != 200 {
		t.Fatalf("POST /messages on the dispatcher: %d %v", st, ans)
	}
	for name, w := range map[string]*wsClient{"alice1": alice1, "alice2": alice2, "bob": bob, "carol": carol, "dave": dave} {
		last := map[string]*float64{"alice1": &sA1, "alice2": &sA2, "bob": &sB, "carol": &sC, "dave": &sD}[name]
		if name == "alice1" {
			sA1 = sA2 - 1 // alice's seq of the first group message
		}
		if cm := w.expectGroupMsg(name, "team", "system", "from the backend", last); cm["msgId"] != ans["data"].(map[string]any)["msgId"] {
			t.Fatalf("%s got %v, the dispatcher answered %v", name, cm["msgId"], ans["data"])
		}
	}

	// A broadcast through the dispatcher reaches every device once.
	st, ans = apiCall(t, "POST", api+"/broadcast", key, map[string]any{"senderId": "system", "msgType": 1, "msg": "all devices"})
	if st != 200 {
		t.Fatalf("POST /broadcast on the dispatcher: %d %v", st, ans)
	}
	for name, w := range map[string]*wsClient{"alice1": alice1, "alice2": alice2, "bob": bob, "carol": carol, "dave": dave} {
		if cm := w.read(); cm["msg"] != "all devices" || cm["seq"] != nil {
			t.Fatalf("%s got %v, want the broadcast", name, cm)
		}
		w.expectNothing(name + " (after the broadcast)")
	}

	// Membership is cached on the nodes. eve, not a member, is refused; once node 2
	// has the group cached, by the node itself (its metrics count it)...
	eve, _, _ := dialUser(t, nodes[1].WS, "eve", 0)
	refusedOnNode := func() float64 { return scrape(t, nodes[1].Health)[`imgate_group_checks_total{answer="non_member"}`] }
	n := 0
	eveSends := func() string {
		n++
		cid := "eve-" + strconv.Itoa(n)
		eve.send(map[string]any{"chatMsg": map[string]any{"senderId": "eve", "groupId": "team", "msgType": 1, "msg": "may I?", "clientMsgId": cid}})
		return cid
	}
	clustertest.WaitFor(t, 10*time.Second, "node 2 refusing eve from its cache", func() bool {
		eve.expectError("eve", "forbidden", eveSends())
		return refusedOnNode() > 0
	})
	// ...and a change made through the dispatcher applies to the very next message:
	// the dispatcher answers only after every node dropped the group from its cache.
	for _, step := range []struct {
		body map[string]any
		ack  bool
	}{{map[string]any{"add": []string{"eve"}}, true}, {map[string]any{"remove": []string{"eve"}}, false}} {
		if st, ans := apiCall(t, "POST", api+"/groups/team/members", key, step.body); st != 200 {
			t.Fatalf("POST members %v: %d %v", step.body, st, ans)
		}
		cid := eveSends()
		if !step.ack {
			eve.expectError("eve", "forbidden", cid)
			continue
		}
		if ack := eve.read(); ack["msgType"] != float64(11) || ack["clientMsgId"] != cid {
			t.Fatalf("eve, just added: got %v, want the ACK of %s", ack, cid)
		}
		for name, w := range map[string]*wsClient{"alice1": alice1, "alice2": alice2, "bob": bob, "carol": carol, "dave": dave} {
			last := map[string]*float64{"alice1": &sA1, "alice2": &sA2, "bob": &sB, "carol": &sC, "dave": &sD}[name]
			w.expectGroupMsg(name, "team", "eve", "may I?", last)
		}
	}
	// Every node answered the announcements: none was waited for until the deadline.
	for _, line := range disp.Log() {
		if strings.Contains(line, "not every node confirmed") {
			t.Fatalf("the dispatcher timed out waiting for a node: %s", line)
		}
	}
}
