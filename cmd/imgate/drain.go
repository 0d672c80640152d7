package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// runDrain is `imgate drain`: it asks the dispatcher's admin route to drain one node
// (POST /api/v1/admin/drain with the server API key). The node leaves the pick, closes
// its clients with 1001 over --window, then waits, draining, to be stopped.
func runDrain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var dispatcher, nodeID string
	var window, timeout time.Duration
	var key secretFlag
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.StringVar(&dispatcher, "dispatcher", "http://127.0.0.1:8080", "the dispatcher's base URL")
	fs.StringVar(&nodeID, "node-id", "", "the node to drain: its nodeId as GET /api/v1/admin/nodes lists it (im-NNNNNNNNNN)")
	fs.DurationVar(&window, "window", 0, "spread the 1001 closes over this long (0: the node's --drain-window)")
	fs.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the dispatcher's answer")
	key.register(fs, "api-key", "the server API key (the dispatcher's and the nodes' --api-key)")
	if err := parseFlags(fs, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return usageError(stderr, "drain", err)
	}
	apiKey, err := key.get()
	switch {
	case err != nil:
	case nodeID == "":
		err = errors.New("--node-id is required")
	case apiKey == "":
		err = errors.New("--api-key (IMGATE_API_KEY or --api-key-file) is required")
	case window < 0 || timeout <= 0:
		err = errors.New("--window must not be negative and --timeout must be positive")
	}
	if err != nil {
		return usageError(stderr, "drain", err)
	}
	q := url.Values{"nodeId": {nodeID}}
	if window > 0 {
		q.Set("window", window.String())
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	target := strings.TrimSuffix(dispatcher, "/") + "/api/v1/admin/drain?" + q.Encode()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, target, nil)
	if err != nil {
		return usageError(stderr, "drain", err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "imgate drain: %v\n", err)
		return 1
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "imgate drain: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Fprintln(stdout, strings.TrimSpace(string(body)))
	return 0
}
