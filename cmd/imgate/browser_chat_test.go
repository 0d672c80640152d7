package main

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBrowserChat drives the page as people do, against `imgate standalone` with its
// SQLite store: two people chat (alice on a desktop, bob on a 375 px phone), receipts
// move alice's message from sent to delivered to read, a second device of alice syncs,
// a third person's message gets its own conversation, a reload restores the
// conversation without duplicates, and a server restart on the same data dir is
// survived without a click.
func TestBrowserChat(t *testing.T) {
	browser := newBrowser(t)
	dir := t.TempDir()
	args := []string{"standalone", "--ws-addr", freeAddr(t), "--http-addr", freeAddr(t), "--data-dir", dir}
	p := startImgate(t, args...)

	alice := newTab(t, browser, "alice", 1280, 800)
	bob := newTab(t, browser, "bob", 375, 740)
	alice.open(p.HTTP)
	alice.screenshot("signin")
	alice.waitFor("sign-in form", `!document.getElementById("signin").hidden`)
	alice.checkA11y("sign-in")
	alice.signIn("alice", "")
	bob.open(p.HTTP)
	bob.signIn("bob", "")

	// alice writes first; bob is online with no conversation open: "delivered".
	alice.chatWith("bob")
	alice.say("hello bob")
	alice.waitBubble("hello bob", "delivered")
	bob.waitFor("alice's conversation with 1 unread", `[...document.querySelectorAll("#convList button")].some(b =>
		b.dataset.conv === "u:alice" && (b.querySelector(".badge") || {}).textContent === "1")`)
	bob.screenshot("unread")
	bob.noHorizontalOverflow("conversation list")

	// bob opens it: alice sees "read"; bob answers with a long URL, which wraps.
	bob.clickConv("u:alice")
	bob.waitBubble("hello bob", "received")
	alice.waitBubble("hello bob", "read")
	longURL := "https://example.com/" + strings.Repeat("a-very-long-path-segment/", 12) + "?q=" + strings.Repeat("x", 80)
	bob.say("see " + longURL)
	alice.waitBubble("see "+longURL, "received")
	bob.waitBubble("see "+longURL, "read")
	bob.noHorizontalOverflow("long URL")
	alice.noHorizontalOverflow("long URL")
	bob.screenshot("chat")
	alice.screenshot("chat")
	bob.checkA11y("chat")
	alice.checkA11y("chat")

	// A second device of alice starts from the history and then follows live.
	alice2 := newTab(t, browser, "alice2", 1024, 700)
	alice2.open(p.HTTP)
	alice2.signIn("alice", "")
	alice2.clickConv("u:bob")
	alice2.waitBubble("hello bob", "")
	alice2.waitBubble("see "+longURL, "received")
	alice.say("from my laptop")
	alice2.waitBubble("from my laptop", "")
	alice2.say("from my second device")
	alice.waitBubble("from my second device", "")
	bob.waitBubble("from my second device", "received")
	alice.waitBubble("from my laptop", "read") // bob's one receipt covers both
	alice.waitBubble("from my second device", "read")

	// carol writes to alice: her own conversation, unread, nothing in bob's.
	carol, _, _ := dialUser(t, p.WS, "carol", -1)
	carol.send(map[string]any{"chatMsg": map[string]any{"senderId": "carol", "receiverId": "alice", "msgType": 1, "msg": "hi, carol here", "clientMsgId": "c-1"}})
	alice.waitFor("carol's conversation unread", `[...document.querySelectorAll("#convList button")].some(b =>
		b.dataset.conv === "u:carol" && (b.querySelector(".badge") || {}).textContent === "1")`)
	for _, b := range alice.bubbles() {
		if strings.Contains(b.Text, "carol") {
			t.Fatalf("carol's message shows in alice's conversation with bob: %+v", alice.bubbles())
		}
	}
	alice.screenshot("two-conversations")

	// A reload restores the open conversation, once each.
	before := alice.bubbles()
	alice.run(reload())
	alice.waitOnline()
	alice.waitBubble("from my second device", "")
	alice.waitFor("all messages back", `document.querySelectorAll("#msgs li.msg").length >= `+strconv.Itoa(len(before)))
	assertSameTexts(t, "after reload", before, alice.bubbles())
	if u := alice.unread()["carol"]; u != 1 {
		t.Fatalf("carol's unread after reload: %d, want 1", u)
	}

	// The server restarts on the same data dir: the pages say so, then come back alone.
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.Exited():
	case <-time.After(15 * time.Second):
		t.Fatal("imgate did not stop")
	}
	alice.waitFor("offline state", `!document.getElementById("conn").classList.contains("online") &&
		!document.getElementById("retryNow").hidden`)
	alice.screenshot("offline")
	alice.checkA11y("offline")
	bob.screenshot("offline")
	p2 := startImgate(t, args...)
	alice.waitOnline()
	bob.waitOnline()
	bob.say("after the restart")
	alice.waitBubble("after the restart", "received")
	bob.waitBubble("after the restart", "read")
	alice.say("still here")
	bob.waitBubble("still here", "received")
	assertNoDuplicates(t, alice.bubbles())
	assertNoDuplicates(t, bob.bubbles())
	alice.screenshot("after-restart")
	bob.screenshot("after-restart")
	_ = p2
}
