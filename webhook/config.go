package webhook

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Config configures [New]. The zero value of every field but URL and Secret is its
// documented default.
type Config struct {
	// URL receives the POSTs: http or https, with a host. Required.
	URL string
	// Secret keys the HMAC-SHA256 signature of every body (X-Imgate-Signature).
	// Required; at least 16 bytes.
	Secret string

	// MaxBatch is the most messages in one POST. Default 100.
	MaxBatch int
	// MaxBatchBytes bounds one POST's body; a single message larger than it goes alone.
	// Default 256 KiB.
	MaxBatchBytes int
	// Linger is how long the oldest waiting message may wait for others to share its
	// POST. Default 200ms.
	Linger time.Duration

	// QueueLen bounds the messages waiting to be sent (not counting those in a POST
	// being made or retried). When a new one finds the queue full, the oldest waiting
	// is dropped (counted in Stats.DroppedOverflow). Default 10,000.
	QueueLen int
	// QueueBytes bounds the encoded bytes waiting, the same way. Default 32 MiB.
	QueueBytes int

	// Workers is how many POSTs may be in flight at once. Default 2.
	Workers int
	// Timeout bounds one POST, the response's headers included. Default 10s.
	Timeout time.Duration
	// RetryMin and RetryMax bound the wait before a retry: exponential from RetryMin,
	// capped at RetryMax, with jitter. Defaults 200ms and 30s.
	RetryMin, RetryMax time.Duration
	// GiveUpAfter is how long a batch is retried, from its first attempt, before it is
	// dropped (counted in Stats.DroppedExpired): a push notification hours late helps
	// nobody. Default 10m.
	GiveUpAfter time.Duration

	// Client makes the requests. Default: an http.Client with keep-alive connections
	// that does not follow redirects (a 3xx is a refusal, like a 4xx).
	Client *http.Client
	// Logger receives drops and refusals (each kind at most once per 10 s). Default:
	// discard.
	Logger *slog.Logger
}

// MinSecretBytes is the shortest Secret New accepts.
const MinSecretBytes = 16

// Validate reports whether c can be used. It accepts zero values for every field but
// URL and Secret and changes nothing.
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return errors.New("webhook: URL is required")
	case err != nil:
		return fmt.Errorf("webhook: URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("webhook: URL %q: want http:// or https:// with a host", c.URL)
	case len(c.Secret) < MinSecretBytes:
		return fmt.Errorf("webhook: the secret must be at least %d bytes", MinSecretBytes)
	case c.MaxBatch < 0 || c.MaxBatchBytes < 0 || c.QueueLen < 0 || c.QueueBytes < 0 || c.Workers < 0:
		return errors.New("webhook: MaxBatch, MaxBatchBytes, QueueLen, QueueBytes and Workers must not be negative")
	case c.Linger < 0 || c.Timeout < 0 || c.RetryMin < 0 || c.RetryMax < 0 || c.GiveUpAfter < 0:
		return errors.New("webhook: durations must not be negative")
	case c.RetryMin > 0 && c.RetryMax > 0 && c.RetryMax < c.RetryMin:
		return errors.New("webhook: RetryMax must not be below RetryMin")
	}
	return nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setDur := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	setInt(&c.MaxBatch, 100)
	setInt(&c.MaxBatchBytes, 256<<10)
	setInt(&c.QueueLen, 10_000)
	setInt(&c.QueueBytes, 32<<20)
	setInt(&c.Workers, 2)
	setDur(&c.Linger, 200*time.Millisecond)
	setDur(&c.Timeout, 10*time.Second)
	setDur(&c.RetryMin, 200*time.Millisecond)
	setDur(&c.RetryMax, 30*time.Second)
	setDur(&c.GiveUpAfter, 10*time.Minute)
	if c.RetryMax < c.RetryMin {
		c.RetryMax = c.RetryMin
	}
	if c.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = c.Workers
		c.Client = &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
