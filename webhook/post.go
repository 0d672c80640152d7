package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"imgate/backoff"
	"imgate/codec"
	"imgate/message"
)

// Event is the body's "event" member.
const Event = "message.offline"

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body under the secret.
const SignatureHeader = "X-Imgate-Signature"

// appendItem appends o as one member of "messages": {"userId","seq","chatMsg"}, the
// chatMsg as a device receives it (its seq is o.Seq).
func appendItem(dst []byte, o *message.Offline) []byte {
	dst = codec.AppendString(append(dst, `{"userId":`...), o.UserID)
	dst = strconv.AppendInt(append(dst, `,"seq":`...), o.Seq, 10)
	m := o.Msg
	m.Seq = o.Seq
	dst = codec.AppendChatMsg(append(dst, `,"chatMsg":`...), &m)
	return append(dst, '}')
}

// appendBody appends the POST body of batch.
func appendBody(dst []byte, batch []item) []byte {
	dst = append(dst, `{"event":"`+Event+`","messages":[`...)
	for i, it := range batch {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, it.json...)
	}
	return append(dst, "]}"...)
}

// sign returns the X-Imgate-Signature value of body.
func sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// send POSTs body (n messages) until it is accepted, refused, retried for GiveUpAfter,
// or the Sender is aborted; every outcome is counted.
func (s *Sender) send(body []byte, n int64) {
	sig := sign(s.secret, body)
	first := time.Now()
	for attempt := 1; ; attempt++ {
		status, retryAfter, err := s.post(body, sig)
		switch {
		case err == nil && status >= 200 && status < 300:
			s.stats.sent.Add(n)
			s.stats.posts.Add(1)
			return
		case err == nil && status != http.StatusTooManyRequests && status < 500:
			// The receiver says the request itself is wrong (a bad URL, a secret it does
			// not know): sending it again would not change the answer.
			s.noteProblem(fmt.Sprintf("refused with HTTP %d: %d messages dropped", status, n))
			s.stats.droppedRejected.Add(n)
			return
		case err != nil:
			s.noteProblem(err.Error())
		default:
			s.noteProblem("HTTP " + strconv.Itoa(status))
		}
		if s.ctx.Err() != nil {
			s.stats.droppedShutdown.Add(n)
			return
		}
		if time.Since(first) >= s.cfg.GiveUpAfter {
			s.noteProblem(fmt.Sprintf("gave up after %v: %d messages dropped", s.cfg.GiveUpAfter, n))
			s.stats.droppedExpired.Add(n)
			return
		}
		d := backoff.Delay(attempt, s.cfg.RetryMin, s.cfg.RetryMax)
		if retryAfter > d {
			d = min(retryAfter, s.cfg.RetryMax)
		}
		s.stats.retries.Add(1)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			s.stats.droppedShutdown.Add(n)
			return
		}
	}
}

func (s *Sender) noteProblem(p string) { s.problem.Store(&p) }

// post makes one POST and returns its status and Retry-After (in seconds, when given).
func (s *Sender) post(body []byte, sig string) (status int, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("webhook: request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "imgate-webhook")
	req.Header.Set(SignatureHeader, sig)
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("webhook: post: %w", err)
	}
	// Read a little of the body so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		retryAfter = time.Duration(secs) * time.Second
	}
	return resp.StatusCode, retryAfter, nil
}
