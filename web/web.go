// Package web holds imgate's browser client: one page served by the dispatcher at GET /
// that asks for a node, connects, replays from its cursor and chats (PROTOCOL.md).
package web

import _ "embed"

// Index is the page.
//
//go:embed index.html
var Index []byte
