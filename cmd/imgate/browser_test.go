package main

// The web page's tests drive Debian's headless Chromium (scripts/services.sh installs
// it) through chromedp against a real `imgate standalone` process. Each person is a
// tab in a browser context of its own (its own localStorage), so two people and two
// devices of one person share one browser. Screenshots go to var/screenshots/.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's chromium. Absent, the test fails, as the tests of the other
// services do when theirs is down: scripts/services.sh up (make test) installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("IMGATE_CHROMIUM"), "/usr/bin/chromium"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatal("Chromium not found: run scripts/services.sh up (it installs Debian's chromium) " +
		"or point IMGATE_CHROMIUM at a Chromium binary")
	return ""
}

// newBrowser starts one headless Chromium with a fresh profile for the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	// Screenshots of an earlier run of this test would mislead whoever looks at them.
	old, _ := filepath.Glob(filepath.Join("..", "..", "var", "screenshots", fileSafe(t.Name())+"-*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if _, err := chromedp.Run(browser, chromedp.Steps()); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return browser
}

// tab is one person's (or device's) page.
type tab struct {
	t     *testing.T
	name  string
	ctx   context.Context
	width int64
}

// socketCounter wraps WebSocket before the page's scripts run, so a test can count
// the sockets the page opened (a reconnect loop shows as a growing count).
const socketCounter = `(() => {
  const W = window.WebSocket;
  window.__sockets = 0;
  function Counted(url, protocols) { window.__sockets++; return protocols === undefined ? new W(url) : new W(url, protocols); }
  Counted.prototype = W.prototype;
  Object.assign(Counted, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Counted;
  window.__errors = [];
  addEventListener("error", e => window.__errors.push(String(e.message)));
  addEventListener("unhandledrejection", e => window.__errors.push(String(e.reason)));
})();`

// newTab opens a tab in a browser context of its own, width×height CSS pixels.
func newTab(t *testing.T, browser context.Context, name string, width, height int64) *tab {
	t.Helper()
	tb := &tab{t: t, name: name, width: width}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tb.ctx = ctx
	_, err := chromedp.Run(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: socketCounter}); err != nil {
			return err
		}
		// A headless tab is never focused; the page sends "read" receipts only while it
		// is looked at.
		_, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
		return err
	}))
	if err == nil {
		_, err = chromedp.Run(ctx, chromedp.EmulateViewport(width, height))
	}
	if err != nil {
		t.Fatalf("%s: new tab: %v", name, err)
	}
	return tb
}

func (tb *tab) run(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Steps(actions...)); err != nil {
		tb.t.Fatalf("%s: %v", tb.name, err)
	}
}

// eval evaluates a JavaScript expression and decodes its JSON value into v.
func (tb *tab) eval(expr string, v any) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage]("JSON.stringify("+expr+")"))
	if err != nil {
		tb.t.Fatalf("%s: eval %s: %v", tb.name, expr, err)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		tb.t.Fatalf("%s: eval %s: %s: %v", tb.name, expr, raw, err)
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		tb.t.Fatalf("%s: eval %s: %s: %v", tb.name, expr, s, err)
	}
}

// waitFor polls a JavaScript condition every 100 ms until it is true or 45 s pass (the
// machine may be loaded: a restart under -race takes seconds, the backoff more); on
// failure it saves a screenshot and reports what the page showed.
func (tb *tab) waitFor(what, cond string) {
	tb.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		var ok bool
		tb.eval("!!("+cond+")", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.screenshot("failed-" + strings.ReplaceAll(what, " ", "-"))
			var state string
			tb.eval(`document.getElementById("connText").textContent + " | " + document.getElementById("signinError").textContent +
				" | errors: " + window.__errors.join("; ")`, &state)
			tb.t.Fatalf("%s: %s: not within 45s (page: %q, bubbles %+v)", tb.name, what, state, tb.bubbles())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the viewport as var/screenshots/<test>-<tab>-<name>.png.
func (tb *tab) screenshot(name string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Logf("%s: screenshot %s: %v", tb.name, name, err)
		return ""
	}
	dir := filepath.Join("..", "..", "var", "screenshots")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		tb.t.Fatal(err)
	}
	file := filepath.Join(dir, fileSafe(tb.t.Name()+"-"+tb.name+"-"+name)+".png")
	if err := os.WriteFile(file, png, 0o600); err != nil {
		tb.t.Fatal(err)
	}
	return file
}

// fileSafe keeps letters, digits, '-' and '_' of s; the rest becomes '-'.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '-'
	}, s)
}

// bubble is one message as the page shows it.
type bubble struct {
	Text   string `json:"text"`
	Status string `json:"status"` // sending, sent, delivered, read, failed (own); received
	Mine   bool   `json:"mine"`
	Fail   string `json:"fail"`
}

// bubbles lists the open conversation's messages, in order.
func (tb *tab) bubbles() []bubble {
	tb.t.Helper()
	var out []bubble
	tb.eval(`[...document.querySelectorAll("#msgs li.msg")].map(li => ({
		text: li.querySelector(".text").lastChild.textContent, status: li.dataset.status,
		mine: li.classList.contains("mine"), fail: (li.querySelector(".fail") || {}).textContent || ""}))`, &out)
	return out
}

// setValue sets the value of the input or textarea with id, as typing would.
func (tb *tab) setValue(id, value string) {
	tb.t.Helper()
	var ok bool
	tb.eval(`(() => { const e = document.getElementById(`+strconv.Quote(id)+`); e.value = `+strconv.Quote(value)+`;
		e.dispatchEvent(new Event("input", {bubbles: true})); return true; })()`, &ok)
}

// open loads the page at base.
func (tb *tab) open(base string) {
	tb.t.Helper()
	tb.run(chromedp.Navigate(base + "/"))
}

// signIn fills the sign-in form and waits until the page is online.
func (tb *tab) signIn(user, token string) {
	tb.t.Helper()
	tb.waitFor("sign-in form", `!document.getElementById("signin").hidden`)
	tb.setValue("userId", user)
	tb.setValue("token", token)
	tb.run(clickID("signinBtn"))
	tb.waitOnline()
}

func (tb *tab) waitOnline() {
	tb.t.Helper()
	tb.waitFor("online", `document.getElementById("conn").classList.contains("online")`)
}

// chatWith opens the conversation with peer (from the list or the "start a chat" form).
func (tb *tab) chatWith(peer string) {
	tb.t.Helper()
	var ok bool
	tb.eval(`(document.getElementById("kindUser").click(), true)`, &ok) // "a person", not "a group"
	tb.setValue("newPeer", peer)
	tb.run(chromedp.Click(chromedp.CSS(`#newChat button[type=submit]`)))
	tb.waitFor("conversation "+peer, `document.getElementById("chatTitle").textContent === `+strconv.Quote(peer))
}

// say sends text in the open conversation.
func (tb *tab) say(text string) {
	tb.t.Helper()
	tb.setValue("text", text)
	tb.run(clickID("send"))
}

// waitBubble waits for a message with text to show with status (any when empty).
func (tb *tab) waitBubble(text, status string) {
	tb.t.Helper()
	cond := `[...document.querySelectorAll("#msgs li.msg")].some(li => li.querySelector(".text").lastChild.textContent === ` +
		strconv.Quote(text)
	if status != "" {
		cond += ` && li.dataset.status === ` + strconv.Quote(status)
	}
	tb.waitFor(fmt.Sprintf("message %q %s", text, status), cond+")")
}

// unread returns the unread badge of each conversation in the list.
func (tb *tab) unread() map[string]int {
	tb.t.Helper()
	out := map[string]int{}
	tb.eval(`Object.fromEntries([...document.querySelectorAll("#convList button")].map(b =>
		[b.querySelector(".conv-name").textContent, Number((b.querySelector(".badge") || {}).textContent || 0)]))`, &out)
	return out
}

// sockets returns how many WebSockets the page has opened since it loaded.
func (tb *tab) sockets() int {
	tb.t.Helper()
	var n int
	tb.eval("window.__sockets", &n)
	return n
}

// noHorizontalOverflow fails when the page is wider than the viewport (a long word or
// a header that does not fit).
func (tb *tab) noHorizontalOverflow(when string) {
	tb.t.Helper()
	var w struct{ Doc, View int }
	tb.eval(`({doc: document.documentElement.scrollWidth, view: window.innerWidth})`, &w)
	if w.Doc > w.View {
		tb.screenshot("overflow-" + when)
		tb.t.Fatalf("%s: %s: page %d px wide in a %d px viewport", tb.name, when, w.Doc, w.View)
	}
}

// freeAddr returns a loopback address with a port free now, for a server that must
// come back on the same address after a restart.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// clickConv clicks a conversation of the list ("u:<peer>") once it is listed.
func (tb *tab) clickConv(key string) {
	tb.t.Helper()
	sel := strconv.Quote(`#convList button[data-conv="` + key + `"]`)
	tb.waitFor("conversation "+key+" listed", "document.querySelector("+sel+")")
	var ok bool
	tb.eval("(document.querySelector("+sel+").click(), true)", &ok)
}

// reload reloads the page.
func reload() chromedp.Action[chromedp.Void] { return chromedp.Reload() }

// assertNoDuplicates fails when a message text shows twice.
func assertNoDuplicates(t *testing.T, bs []bubble) {
	t.Helper()
	seen := map[string]bool{}
	for _, b := range bs {
		if seen[b.Text] {
			t.Fatalf("message %q shows twice: %+v", b.Text, bs)
		}
		seen[b.Text] = true
	}
}

// assertSameTexts fails unless got shows the messages of want, in the same order.
func assertSameTexts(t *testing.T, when string, want, got []bubble) {
	t.Helper()
	assertNoDuplicates(t, got)
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d:\n got %+v\nwant %+v", when, len(got), len(want), got, want)
	}
	for i := range want {
		if got[i].Text != want[i].Text {
			t.Fatalf("%s: message %d is %q, want %q", when, i, got[i].Text, want[i].Text)
		}
	}
}

// clickID clicks the element with id.
func clickID(id string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.ID(id)) }

// a11yAudit checks what a person with a screen reader or low vision relies on: a
// role=log with aria-live for the messages, a label on every visible form field, and
// WCAG AA contrast (4.5:1) for every visible text against its nearest opaque
// background.
const a11yAudit = `(() => {
  const problems = [];
  const log = document.querySelector("[role=log]");
  if (!log || !log.getAttribute("aria-live")) problems.push("no role=log with aria-live");
  const visible = e => e.offsetParent !== null || getComputedStyle(e).position === "fixed";
  for (const f of document.querySelectorAll("input, textarea, select")) {
    if (visible(f) && !(f.labels && f.labels.length) && !f.getAttribute("aria-label")) problems.push("unlabelled " + (f.id || f.name));
  }
  const rgb = c => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
  const bgOf = e => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] >= 0.99)) return c;
    }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n; (n = walker.nextNode());) {
    const e = n.parentElement;
    if (!n.textContent.trim() || !visible(e) || e.closest(".sr-only")) continue;
    const fg = lum(rgb(getComputedStyle(e).color)), bg = lum(bgOf(e));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 4.5) problems.push("contrast " + ratio.toFixed(2) + " for " + JSON.stringify(n.textContent.trim().slice(0, 30)));
  }
  return problems;
})()`

// checkA11y fails the test on any problem a11yAudit finds on the page as it is now.
func (tb *tab) checkA11y(when string) {
	tb.t.Helper()
	var problems []string
	tb.eval(a11yAudit, &problems)
	if len(problems) > 0 {
		tb.screenshot("a11y-" + when)
		tb.t.Fatalf("%s: %s: accessibility: %q", tb.name, when, problems)
	}
}
