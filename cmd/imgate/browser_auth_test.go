package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserTooLarge: a message over --max-message-bytes makes the node close the
// socket with 1009. The page shows the error once, on that message, reconnects once
// without resending it, and goes on chatting: no reconnect loop.
func TestBrowserTooLarge(t *testing.T) {
	browser := newBrowser(t)
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "memory", "--max-message-bytes", "2048")
	alice := newTab(t, browser, "alice", 375, 700)
	alice.open(p.HTTP)
	alice.signIn("alice", "")
	alice.chatWith("bob")
	alice.say("small first")
	alice.waitBubble("small first", "sent")
	big := "big " + strings.Repeat("x", 4000)
	alice.say(big)
	alice.waitBubble(big, "failed")
	alice.waitOnline()
	alice.say("small after")
	alice.waitBubble("small after", "sent")
	// A loop would reconnect every backoff step (0.5 s, 1 s, 2 s …) and resend the big
	// message each time: watch the page for three seconds of that schedule.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if n := alice.sockets(); n != 2 {
			t.Fatalf("%d sockets opened, want 2 (the first and one reconnect after 1009)", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var fails int
	alice.eval(`document.querySelectorAll("#msgs .fail").length`, &fails)
	if fails != 1 {
		t.Fatalf("%d error notes, want 1: %+v", fails, alice.bubbles())
	}
	for _, b := range alice.bubbles() {
		if b.Text == big && !strings.Contains(b.Fail, "Too large") {
			t.Fatalf("the big message's note is %q", b.Fail)
		}
	}
	alice.screenshot("too-large")
	alice.checkA11y("failed message")
	alice.noHorizontalOverflow("too large")

	// Disconnect, write while offline, reload: the message waits in the outbox, survives
	// the reload, and is sent once the page is online again.
	alice.run(clickID("connBtn"))
	alice.waitFor("disconnected", `document.getElementById("connText").textContent === "Disconnected" &&
		document.getElementById("connBtn").textContent === "Connect"`)
	alice.say("written offline")
	alice.waitBubble("written offline", "sending")
	alice.screenshot("offline-outbox")
	alice.run(reload())
	alice.waitOnline()
	alice.waitBubble("written offline", "sent")
	alice.waitBubble(big, "failed") // still shown, still not sent
	assertNoDuplicates(t, alice.bubbles())

	// A double click on Connect opens one socket and stays connected.
	alice.run(clickID("connBtn"))
	alice.waitFor("disconnected again", `document.getElementById("connBtn").textContent === "Connect"`)
	before := alice.sockets()
	// A real double click: a press with clickCount 1, then one with clickCount 2.
	alice.run(clickID("connBtn"), chromedp.DoubleClick(chromedp.ID("connBtn")))
	alice.waitOnline()
	if n := alice.sockets() - before; n != 1 {
		t.Fatalf("a double click on Connect opened %d sockets, want 1", n)
	}
}

// TestBrowserSignInWithAuth: with --auth-secret the page signs in through --dev-login
// (no token typed), with a pasted token from `imgate token` (the user id read from the
// token), and a bad token brings it back to the sign-in form once, without a loop.
func TestBrowserSignInWithAuth(t *testing.T) {
	const secret = "browser-test-secret-0123456789"
	t.Setenv("IMGATE_AUTH_SECRET", secret)
	browser := newBrowser(t)
	p := startImgate(t, "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--store", "memory", "--dev-login")
	if logCount(p.Log(), "level=WARN", "DEV LOGIN IS ON") != 1 {
		t.Fatalf("no WARN about --dev-login:\n%s", p.Tail(20))
	}

	dora := newTab(t, browser, "dora", 1024, 700)
	dora.open(p.HTTP)
	dora.signIn("dora", "")

	out, err := exec.Command(binPath, "token", "--user", "erin", "--ttl", "1h").Output()
	if err != nil {
		t.Fatal(err)
	}
	erin := newTab(t, browser, "erin", 375, 700)
	erin.open(p.HTTP)
	erin.signIn("", strings.TrimSpace(string(out)))
	erin.waitFor("signed in as erin", `document.getElementById("me").textContent === "erin"`)

	dora.chatWith("erin")
	dora.say("hi erin, with auth on")
	erin.clickConv("u:dora")
	erin.waitBubble("hi erin, with auth on", "received")
	dora.waitBubble("hi erin, with auth on", "read")
	// History needs the token: a reload shows the conversation from it.
	erin.run(reload())
	erin.waitOnline()
	erin.waitBubble("hi erin, with auth on", "received")
	erin.screenshot("auth")

	// A token signed with another secret: 4401, back to the form with the reason.
	forged := exec.Command(binPath, "token", "--user", "mallory", "--ttl", "1h")
	forged.Env = append(os.Environ(), "IMGATE_AUTH_SECRET=another-secret-0123456789")
	bad, err := forged.Output()
	if err != nil {
		t.Fatal(err)
	}
	mallory := newTab(t, browser, "mallory", 375, 700)
	mallory.open(p.HTTP)
	mallory.waitFor("sign-in form", `!document.getElementById("signin").hidden`)
	mallory.setValue("token", strings.TrimSpace(string(bad)))
	mallory.run(clickID("signinBtn"))
	mallory.waitFor("refused sign-in", `!document.getElementById("signin").hidden &&
		document.getElementById("signinError").textContent.includes("4401")`)
	mallory.screenshot("refused")
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if n := mallory.sockets(); n != 1 {
			t.Fatalf("%d sockets after a refused token, want 1", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
