package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"imgate/server"
)

// applyNodeSecurity turns the rate-limit and auth flags into the node's config:
// --rate-limit 0 means off (the config's zero means its default).
func applyNodeSecurity(cfg *server.Config, secret string) error {
	switch {
	case cfg.RateLimit < 0:
		return errors.New("--rate-limit must not be negative (0 turns it off)")
	case cfg.RateLimit == 0:
		cfg.RateLimit = -1
	}
	if cfg.RateBurst <= 0 {
		return errors.New("--rate-burst must be positive")
	}
	if secret == "" {
		return nil
	}
	auth, err := server.NewHMACAuth(secret)
	if err != nil {
		return fmt.Errorf("--auth-secret: %w", err)
	}
	cfg.Auth = auth
	return nil
}

// runToken is `imgate token`: it prints a CONNECT_INIT token for a user, signed with the
// secret the nodes verify (--auth-secret).
func runToken(_ context.Context, args []string, stdout, stderr io.Writer) int {
	var secret, user string
	var ttl time.Duration
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.StringVar(&secret, "auth-secret", "", "the nodes' --auth-secret (or IMGATE_AUTH_SECRET)")
	fs.StringVar(&user, "user", "", "the user id the token proves (senderId of CONNECT_INIT)")
	fs.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid")
	if err := parseFlags(fs, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return usageError(stderr, "token", err)
	}
	if user == "" || ttl <= 0 {
		return usageError(stderr, "token", errors.New("--user is required and --ttl must be positive"))
	}
	auth, err := server.NewHMACAuth(secret)
	if err != nil {
		return usageError(stderr, "token", err)
	}
	fmt.Fprintln(stdout, auth.Token(user, ttl))
	return 0
}
