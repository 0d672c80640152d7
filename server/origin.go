package server

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// originPolicy decides which browser Origins may open a WebSocket (PROTOCOL §7). A
// request without Origin is not a browser's and always passes; the others pass only
// when listed. It is fixed by New and read by every loop.
type originPolicy struct {
	any     bool            // "*" was configured
	allowed map[string]bool // normalized scheme://host[:port]
}

func newOriginPolicy(list []string) *originPolicy {
	p := &originPolicy{allowed: make(map[string]bool, len(list))}
	for _, o := range list {
		if strings.TrimSpace(o) == "*" {
			p.any = true
			continue
		}
		if n, ok := normalizeOrigin(o); ok {
			p.allowed[n] = true
		}
	}
	return p
}

// AllowOrigins allows the browser origins of Config.AllowedOrigins and origins, for
// what is known only once the node runs (standalone's dispatcher page on a port chosen
// at start). Safe for concurrent use; later upgrades see the new list.
func (s *Server) AllowOrigins(origins ...string) error {
	all := append(append([]string(nil), s.cfg.AllowedOrigins...), origins...)
	if err := validateOrigins(all); err != nil {
		return err
	}
	s.origins.Store(newOriginPolicy(all))
	return nil
}

// allows reports whether an upgrade carrying Origin origin ("" when absent) may go on.
func (p *originPolicy) allows(origin string) bool {
	if origin == "" || p.any {
		return true
	}
	n, ok := normalizeOrigin(origin)
	return ok && p.allowed[n]
}

// normalizeOrigin returns o as scheme://host[:port] with scheme and host lower-cased
// and the scheme's default port (http 80, https 443) dropped, so that a configured
// origin and a browser's header compare exactly. It refuses a path, query, user info
// or a bad port ("null", the opaque origin, has no scheme and is refused too).
func normalizeOrigin(o string) (string, bool) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(o), "://")
	if !ok || !isScheme(scheme) || rest == "" || strings.ContainsAny(rest, "/?#@ \t\\") {
		return "", false
	}
	host, port := rest, ""
	if h, p, err := net.SplitHostPort(rest); err == nil {
		host, port = h, p
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", false
		}
	} else if strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") {
		host = rest[1 : len(rest)-1]
	} else if strings.Contains(rest, ":") {
		return "", false
	}
	if host == "" {
		return "", false
	}
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port, true
	}
	return scheme + "://" + host, true
}

// isScheme reports whether s is an RFC 3986 scheme.
func isScheme(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		alpha := c|0x20 >= 'a' && c|0x20 <= 'z'
		other := c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
		if !alpha && (i == 0 || !other) {
			return false
		}
	}
	return true
}

// validateOrigins checks Config.AllowedOrigins: "*" or scheme://host[:port].
func validateOrigins(list []string) error {
	for _, o := range list {
		if strings.TrimSpace(o) == "*" {
			continue
		}
		if _, ok := normalizeOrigin(o); !ok {
			return fmt.Errorf("server: allowed origin %q: want scheme://host[:port] (no path) or *", o)
		}
	}
	return nil
}
