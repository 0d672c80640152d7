package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserGroups drives group conversations on the page against `imgate standalone`
// with its SQLite store, auth on (--dev-login: the pages fetch tokens, which history
// needs once --api-key closes the open routes) and the server API key that creates the
// group: alice's message reaches bob (375 px) and carol in the group conversation with
// alice as its sender and an unread count; one-to-one chat beside it is unchanged; dave,
// not a member, sees "not a member" once on his message, which is not retried; bob's
// reload rebuilds the group from the history route and the replay without duplicates.
func TestBrowserGroups(t *testing.T) {
	const key = "browser-groups-api-key-0123456789"
	t.Setenv("IMGATE_AUTH_SECRET", "browser-groups-secret-0123456789")
	t.Setenv("IMGATE_API_KEY", key)
	browser := newBrowser(t)
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "sqlite",
		"--data-dir", t.TempDir(), "--dev-login")
	if st, ans := apiCall(t, "PUT", p.HTTP+"/api/v1/groups/team", key,
		map[string]any{"members": []string{"alice", "bob", "carol"}}); st != 200 {
		t.Fatalf("PUT /api/v1/groups/team: %d %v", st, ans)
	}

	alice := newTab(t, browser, "alice", 1280, 800)
	bob := newTab(t, browser, "bob", 375, 740)
	carol := newTab(t, browser, "carol", 1024, 700)
	dave := newTab(t, browser, "dave", 375, 700)
	for _, tb := range []*tab{alice, bob, carol, dave} {
		tb.open(p.HTTP)
		tb.signIn(tb.name, "")
	}
	alice.checkA11y("start form")

	// alice opens the group by its id and writes; bob and carol have nothing open.
	alice.openGroup("team")
	alice.say("hello team")
	alice.waitBubble("hello team", "sent")
	for _, tb := range []*tab{bob, carol} {
		tb.waitFor("team listed as a group with 1 unread", `(() => {
			const b = document.querySelector('#convList button[data-conv="g:team"]');
			return b && (b.querySelector(".badge") || {}).textContent === "1" &&
				(b.querySelector(".tag") || {}).textContent === "Group" && b.querySelector(".conv-last").textContent === "alice: hello team";
		})()`)
	}
	bob.screenshot("group-unread")
	bob.noHorizontalOverflow("conversation list with a group")
	bob.checkA11y("conversation list with a group")

	// In the conversation each message of another member names its sender.
	bob.clickConv("g:team")
	bob.waitBubble("hello team", "received")
	carol.clickConv("g:team")
	carol.waitBubble("hello team", "received")
	bob.say("hi alice and carol")
	alice.waitBubble("hi alice and carol", "received")
	carol.waitBubble("hi alice and carol", "received")
	bob.waitBubble("hi alice and carol", "sent")
	for _, tb := range []*tab{bob, carol} {
		if s := tb.senders()["hello team"]; s != "alice" {
			t.Fatalf("%s: \"hello team\" shows sender %q, want alice", tb.name, s)
		}
	}
	if s := alice.senders()["hi alice and carol"]; s != "bob" {
		t.Fatalf("alice: \"hi alice and carol\" shows sender %q, want bob", s)
	}
	if u := carol.unread()["team"]; u != 0 {
		t.Fatalf("carol has team open and unread %d, want 0", u)
	}

	// One-to-one beside it: alice writes to bob alone; it lands in bob's "alice"
	// conversation (unread), not in the group he has open.
	alice.chatWith("bob")
	alice.say("just for you, bob")
	alice.waitBubble("just for you, bob", "delivered")
	bob.waitFor("alice's one-to-one conversation unread", `(() => {
		const b = document.querySelector('#convList button[data-conv="u:alice"]');
		return b && (b.querySelector(".badge") || {}).textContent === "1" && !b.querySelector(".tag");
	})()`)
	for _, b := range bob.bubbles() {
		if b.Text == "just for you, bob" {
			t.Fatalf("a one-to-one message shows in bob's group conversation: %+v", bob.bubbles())
		}
	}
	bob.noHorizontalOverflow("group conversation")
	bob.checkA11y("group conversation")
	bob.screenshot("group")
	carol.screenshot("group")
	alice.clickConv("g:team")
	alice.waitBubble("hi alice and carol", "received")
	alice.screenshot("group")
	alice.checkA11y("group conversation")

	// dave is no member: his message is refused once, marked failed, and not sent again.
	dave.openGroup("team")
	dave.say("let me in")
	dave.waitBubble("let me in", "failed")
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		var notes []string
		dave.eval(`[...document.querySelectorAll("#msgs .fail")].map(f => f.firstChild.textContent)`, &notes)
		if len(notes) != 1 || notes[0] != "Not sent: you are not a member of team." {
			t.Fatalf("dave's error notes: %q, want one saying he is not a member of team", notes)
		}
		if n := dave.sockets(); n != 1 {
			t.Fatalf("dave: %d sockets, want 1", n)
		}
		if bs := dave.bubbles(); len(bs) != 1 || bs[0].Status != "failed" {
			t.Fatalf("dave's messages: %+v, want \"let me in\" failed", bs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	dave.noHorizontalOverflow("forbidden")
	dave.checkA11y("forbidden")
	dave.screenshot("forbidden")
	// A reload shows it again, still failed (the outbox keeps it), and sends nothing.
	dave.run(reload())
	dave.waitOnline()
	dave.waitBubble("let me in", "failed")
	var form struct{ Group, GroupLabel bool }
	dave.eval(`({group: document.getElementById("kindGroup").checked,
		groupLabel: document.getElementById("newPeerLabel").textContent === "Group id"})`, &form)
	if form.Group != form.GroupLabel {
		t.Fatalf("dave after reload: 'a group' checked %v but the field's label says Group id %v", form.Group, form.GroupLabel)
	}
	var notes int
	dave.eval(`[...document.querySelectorAll("#msgs .fail")].filter(f => f.textContent.includes("not a member of team")).length`, &notes)
	if notes != 1 || dave.sockets() != 1 {
		t.Fatalf("dave after reload: %d notes, %d sockets, want 1 and 1", notes, dave.sockets())
	}

	// bob is away while carol writes; his reload rebuilds the group conversation from
	// the history route and the replay, each message once.
	bob.run(clickID("connBtn"))
	bob.waitFor("bob disconnected", `document.getElementById("connBtn").textContent === "Connect"`)
	carol.say("while bob was away")
	carol.waitBubble("while bob was away", "sent")
	alice.waitBubble("while bob was away", "received")
	bob.run(reload())
	bob.waitOnline()
	bob.waitFor("group reopened", `document.getElementById("chatTitle").textContent === "team" && !document.getElementById("chatKind").hidden`)
	bob.waitBubble("while bob was away", "received")
	want := []bubble{{Text: "hello team"}, {Text: "hi alice and carol"}, {Text: "while bob was away"}}
	bob.waitFor("the group's three messages", `document.querySelectorAll("#msgs li.msg").length >= 3`)
	assertSameTexts(t, "bob after reload", want, bob.bubbles())
	if s := bob.senders()["while bob was away"]; s != "carol" {
		t.Fatalf("bob after reload: sender %q, want carol", s)
	}
	for _, tb := range []*tab{alice, bob, carol} {
		for _, b := range tb.bubbles() {
			if b.Text == "let me in" {
				t.Fatalf("%s got dave's refused message", tb.name)
			}
		}
	}
	if u := bob.unread()["alice"]; u != 1 {
		t.Fatalf("bob's unread with alice after reload: %d, want 1", u)
	}
	bob.noHorizontalOverflow("group after reload")
	bob.screenshot("group-after-reload")
	bob.run(clickID("back"))
	bob.waitFor("conversation list", `!document.getElementById("app").classList.contains("in-chat")`)
	bob.screenshot("list-after-reload")
}

// openGroup opens the conversation of group id through the "start a conversation" form.
func (tb *tab) openGroup(id string) {
	tb.t.Helper()
	var ok bool
	tb.eval(`(document.getElementById("kindGroup").click(), true)`, &ok)
	tb.waitFor("the form asks for a group id", `document.getElementById("newPeerLabel").textContent === "Group id"`)
	tb.setValue("newPeer", id)
	tb.run(chromedp.Click(chromedp.CSS(`#newChat button[type=submit]`)))
	tb.waitFor("group "+id, `document.getElementById("chatTitle").textContent === `+strconv.Quote(id)+
		` && !document.getElementById("chatKind").hidden`)
}

// senders maps each message text of the open conversation to the sender it shows
// ("" when none is shown: one's own, or a one-to-one conversation).
func (tb *tab) senders() map[string]string {
	tb.t.Helper()
	out := map[string]string{}
	tb.eval(`Object.fromEntries([...document.querySelectorAll("#msgs li.msg")].map(li =>
		[li.querySelector(".text").lastChild.textContent, ((li.querySelector(".sender") || {}).firstChild || {}).textContent || ""]))`, &out)
	for k, v := range out {
		out[k] = strings.TrimSpace(v)
	}
	return out
}
