// Package web holds imgate's browser client: a chat page of plain ES modules, served by
// the dispatcher at GET / (index.html) and GET /<file> (docs/web.md). imclient.js is the
// client logic (connect, reconnect with backoff and jitter, cursor, dedupe by msgId,
// resend with clientMsgId), app.js the page over it, style.css its look.
package web

import "embed"

// Files are the page's files: index.html, app.js, imclient.js, style.css.
//
//go:embed index.html app.js imclient.js style.css
var Files embed.FS
