package registry

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// NodeInfo is what a node announces about itself: the address clients connect to.
type NodeInfo struct {
	IP   string
	Port int
	// WSURL is the URL clients dial when it is not ws://IP:Port/<path>, e.g. the public
	// wss:// URL of a TLS proxy in front of the node (--advertise-url). Empty: none.
	WSURL string
	// AdminURL is the base URL of the node's admin routes (its --http-addr), which the
	// dispatcher calls for drain, sessions and kick. Empty: none.
	AdminURL string
}

// Node is one registered node as seen by a watcher.
type Node struct {
	// ID is the znode name, e.g. "im-0000000003"; unique and never reused within a namespace.
	ID   string
	IP   string
	Port int
	// OnlineCounts is the connection count the node last flushed (at most FlushInterval old).
	OnlineCounts int64
	Draining     bool
	// WSURL and AdminURL are the node's NodeInfo fields; empty when it announced none.
	WSURL    string
	AdminURL string
	// Epoch is the sequence number of ID. A node that re-registers after a session expiry gets a
	// higher epoch, so presence entries written under an older epoch can be fenced off.
	Epoch int64
	// Token is the registration token of the node process. It survives re-registration, so the
	// same token under two IDs is one process; ports are claimed with it as owner (see package ports).
	Token string
}

// zkNodeData is the JSON stored in a node's znode. The first three fields are the original
// NettyServerNode fields that operators' tools read.
type zkNodeData struct {
	IP           string `json:"ip"`
	Port         int    `json:"port"`
	OnlineCounts int64  `json:"onlineCounts"`
	NodeID       string `json:"nodeId"`
	Draining     bool   `json:"draining"`
	Token        string `json:"token,omitempty"`
	WSURL        string `json:"wsUrl,omitempty"`
	AdminURL     string `json:"adminUrl,omitempty"`
}

// zkNodePrefix is the name prefix of the sequential children of server-list.
const zkNodePrefix = "im-"

// NewToken returns a random registration token (32 hex digits). A node creates one at start,
// claims its port with it (the owner of ports.Allocator.Acquire) and passes it as Config.Token.
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}

// parseNodeEpoch returns the sequence number of a server-list child name ("im-0000000003" → 3).
func parseNodeEpoch(id string) (int64, error) {
	digits, ok := strings.CutPrefix(id, zkNodePrefix)
	if !ok || digits == "" {
		return 0, fmt.Errorf("registry: node id %q: want %sNNNNNNNNNN", id, zkNodePrefix)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("registry: node id %q: bad sequence number", id)
	}
	return n, nil
}

// decodeNodeRecord builds a Node from a child name and its znode data.
func decodeNodeRecord(id string, data []byte) (Node, error) {
	epoch, err := parseNodeEpoch(id)
	if err != nil {
		return Node{}, err
	}
	var d zkNodeData
	if err := json.Unmarshal(data, &d); err != nil {
		return Node{}, fmt.Errorf("registry: node %s: bad data: %w", id, err)
	}
	return Node{
		ID: id, IP: d.IP, Port: d.Port, OnlineCounts: d.OnlineCounts,
		Draining: d.Draining, Epoch: epoch, Token: d.Token, WSURL: d.WSURL, AdminURL: d.AdminURL,
	}, nil
}
