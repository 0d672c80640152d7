package bus

import (
	"imgate/message"
)

// forRecipients calls fn for every user whose inbox holds s, each once: receiver and
// sender of a one-to-one message, every member (and the sender) of a group message.
// A Duplicate or Forbidden record has none: it is delivered to nobody.
func forRecipients(s *message.Saved, fn func(user string)) {
	if s.Duplicate || s.Forbidden || s.Broadcast {
		return
	}
	if s.Msg.GroupID != "" {
		for _, ms := range s.Members {
			fn(ms.User)
		}
		return
	}
	fn(s.Msg.ReceiverID)
	if s.Msg.SenderID != s.Msg.ReceiverID {
		fn(s.Msg.SenderID)
	}
}

// recipientUsers returns the distinct recipients of saved.
func recipientUsers(saved []message.Saved) []string {
	seen := make(map[string]struct{}, 2*len(saved))
	users := make([]string, 0, 2*len(saved))
	for i := range saved {
		forRecipients(&saved[i], func(u string) {
			if _, ok := seen[u]; !ok {
				seen[u] = struct{}{}
				users = append(users, u)
			}
		})
	}
	return users
}

// byNode splits saved by the nodes routes names for their recipients, plus each
// record's accepting node (Record.Node: it answers the sender), keeping the order of
// saved on every node. A group message is copied once per node with the members whose
// devices are there (possibly none, on the accepting node).
func byNode(saved []message.Saved, routes map[string][]string) map[string][]message.Saved {
	dests := make(map[string][]message.Saved)
	last := make(map[string]int) // node → 1 + index in saved of the record it got last
	add := func(node string, i int, s message.Saved) {
		if node == "" || last[node] == i+1 {
			return
		}
		last[node] = i + 1
		dests[node] = append(dests[node], s)
	}
	for i := range saved {
		s := &saved[i]
		if s.Msg.GroupID == "" || s.Duplicate || s.Forbidden {
			add(s.Node, i, *s)
			forRecipients(s, func(u string) {
				for _, n := range routes[u] {
					add(n, i, *s)
				}
			})
			continue
		}
		members := make(map[string][]message.MemberSeq)
		var order []string
		for _, ms := range s.Members {
			for _, n := range routes[ms.User] {
				if _, ok := members[n]; !ok {
					order = append(order, n)
				}
				members[n] = append(members[n], ms)
			}
		}
		if _, ok := members[s.Node]; !ok && s.Node != "" {
			order = append(order, s.Node)
		}
		for _, n := range order {
			cp := *s
			cp.Members = members[n]
			add(n, i, cp)
		}
	}
	return dests
}

// offlineOf lists the recipients of saved that routes shows on no node and that the
// webhook hears of (message.NotifiesOffline): the receiver of a one-to-one message,
// every member of a group message but its sender, each with the seq of its inbox.
func offlineOf(saved []message.Saved, routes map[string][]string) []message.Offline {
	var out []message.Offline
	note := func(s *message.Saved, user string, seq int64) {
		if len(routes[user]) == 0 && message.NotifiesOffline(user, seq, &s.Msg) {
			out = append(out, message.Offline{UserID: user, Seq: seq, Msg: s.Msg})
		}
	}
	for i := range saved {
		s := &saved[i]
		switch {
		case s.Duplicate || s.Forbidden || s.Broadcast:
		case s.Msg.GroupID != "":
			for _, ms := range s.Members {
				note(s, ms.User, ms.Seq)
			}
		default:
			note(s, s.Msg.ReceiverID, s.ReceiverSeq)
		}
	}
	return out
}
