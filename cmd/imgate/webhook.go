package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"

	"imgate/webhook"
)

// webhookFlags are the offline webhook's settings (standalone and saver).
type webhookFlags struct {
	url    string
	secret secretFlag
	queue  int
}

func (f *webhookFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "webhook-url", "", "POST messages whose receiver had no connected device to this URL, batched and signed (docs/protocol.md; empty: off)")
	f.secret.register(fs, "webhook-secret", "HMAC-SHA256 key of the webhook's X-Imgate-Signature (at least 16 bytes; required with --webhook-url)")
	fs.IntVar(&f.queue, "webhook-queue", 10_000, "offline messages waiting to be posted; when full the oldest waiting is dropped (counted and logged)")
}

// config returns the webhook's config, ok false when --webhook-url is empty.
func (f *webhookFlags) config() (cfg webhook.Config, ok bool, err error) {
	secret, err := f.secret.get()
	if err != nil {
		return webhook.Config{}, false, err
	}
	if f.url == "" {
		if secret != "" {
			return webhook.Config{}, false, errors.New("--webhook-secret is set but --webhook-url is not")
		}
		return webhook.Config{}, false, nil
	}
	if f.queue <= 0 {
		return webhook.Config{}, false, errors.New("--webhook-queue must be positive")
	}
	cfg = webhook.Config{URL: f.url, Secret: secret, QueueLen: f.queue}
	if err := cfg.Validate(); err != nil {
		return webhook.Config{}, false, err
	}
	return cfg, true, nil
}

// validate checks the flags without starting anything.
func (f *webhookFlags) validate() error {
	_, _, err := f.config()
	return err
}

// start returns the running Sender, nil when the webhook is off.
func (f *webhookFlags) start(log *slog.Logger) (*webhook.Sender, error) {
	cfg, ok, err := f.config()
	if err != nil || !ok {
		return nil, err
	}
	cfg.Logger = log.With("role", "webhook")
	s, err := webhook.New(cfg)
	if err != nil {
		return nil, err
	}
	log.Info("offline webhook on", "url", s.Target(), "queue", cfg.QueueLen)
	return s, nil
}

// stopWebhook closes s (nil: off) within ctx and logs what it sent and dropped.
func stopWebhook(ctx context.Context, s *webhook.Sender, log *slog.Logger) error {
	if s == nil {
		return nil
	}
	err := s.Close(ctx)
	st := s.Stats()
	log.Info("offline webhook stopped", "enqueued", st.Enqueued, "sent", st.Sent, "posts", st.Posts, "retries", st.Retries,
		"droppedQueueFull", st.DroppedOverflow, "droppedRefused", st.DroppedRejected, "droppedExpired", st.DroppedExpired,
		"droppedShutdown", st.DroppedShutdown)
	return err
}
