package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxPickBody bounds the dispatcher's answer read by Pick.
const maxPickBody = 64 << 10

// pickAnswer is the dispatcher's answer envelope (PROTOCOL §1).
type pickAnswer struct {
	Data *struct {
		IP    string `json:"ip"`
		Port  int    `json:"port"`
		WSURL string `json:"wsUrl"`
		// RetryAfterMs is optional backoff advice: how long to wait before asking again.
		RetryAfterMs int64 `json:"retryAfterMs"`
	} `json:"data"`
}

// Pick asks the dispatcher at base (http://host:port) which node userID should use and
// returns its WebSocket URL: data.wsUrl, or ws://ip:port/ws when the answer has none. Any
// answer other than 200 is an *HTTPError; a 503 ("no live node") carries the dispatcher's
// Retry-After advice. hc nil: http.DefaultClient.
func Pick(ctx context.Context, hc *http.Client, base, userID string) (string, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	u := strings.TrimRight(base, "/") + "/api/v1/nodes/pick?userId=" + url.QueryEscape(userID)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("client: pick: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("client: pick: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	var a pickAnswer
	decErr := json.NewDecoder(io.LimitReader(resp.Body, maxPickBody)).Decode(&a)
	// Drain what is left so the keep-alive connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxPickBody))
	if resp.StatusCode != http.StatusOK {
		he := &HTTPError{URL: u, Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
		if a.Data != nil {
			he.RetryAfter = max(he.RetryAfter, time.Duration(a.Data.RetryAfterMs)*time.Millisecond)
		}
		return "", he
	}
	if decErr != nil || a.Data == nil {
		return "", fmt.Errorf("client: pick: unreadable answer from %s: %v", u, decErr)
	}
	if a.Data.WSURL != "" {
		return a.Data.WSURL, nil
	}
	if a.Data.IP == "" || a.Data.Port <= 0 {
		return "", fmt.Errorf("client: pick: answer from %s names no node", u)
	}
	return "ws://" + net.JoinHostPort(a.Data.IP, strconv.Itoa(a.Data.Port)) + "/ws", nil
}

// maxRetryAfter bounds the advice honoured, against a broken or hostile header.
const maxRetryAfter = 10 * time.Minute

// parseRetryAfter reads a Retry-After header (RFC 9110 §10.2.3): delay-seconds or an
// HTTP date. Absent or unreadable: 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		d = time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}
