package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// MaxURLLength is the longest webhook URL CheckURL accepts, in bytes.
const MaxURLLength = 2048

// ErrInvalidURL is wrapped by every CheckURL error that is not a
// *BlockedError: the URL is malformed or uses something the policy does not
// allow (scheme, credentials, odd host spelling).
var ErrInvalidURL = errors.New("invalid webhook URL")

// CheckURL parses raw and checks that webhooks may be delivered to it: the
// scheme is https (or http when p.AllowHTTP), there is a host and no user
// info, the URL is at most MaxURLLength bytes, and a host given as an IP
// address is allowed by p. Hosts that spell an IPv4 address any way other
// than a canonical dotted quad (2130706433, 0x7f.0.0.1, 0177.0.0.1, 127.1)
// are rejected, since resolvers disagree on what they mean.
//
// Host names are not resolved: the client from NewClient checks the
// addresses they resolve to when it connects. The error wraps ErrInvalidURL
// or is a *BlockedError (see IsBlocked); it never repeats the URL, which
// may carry credentials.
func (p Policy) CheckURL(raw string) (*url.URL, error) {
	if len(raw) > MaxURLLength {
		return nil, invalidf("URL is %d bytes long, the limit is %d", len(raw), MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// *url.Error quotes the whole URL, credentials included; keep only
		// what went wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowHTTP:
	case u.Scheme == "http":
		return nil, invalidf("scheme http is not allowed, use https")
	case u.Scheme == "":
		return nil, invalidf("URL has no scheme, want https://host/path")
	default:
		return nil, invalidf("scheme %q is not allowed, use https", u.Scheme)
	}
	if u.Opaque != "" {
		return nil, invalidf("URL is not hierarchical, want %s://host/path", u.Scheme)
	}
	if u.User != nil {
		return nil, invalidf("URL must not contain credentials (user info): they would end up in logs; use the signing secret to authenticate deliveries")
	}
	host := u.Hostname()
	if host == "" {
		return nil, invalidf("URL has no host")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, invalidf("port %q is not between 1 and 65535", port)
		}
	}
	check := p.checkHostName
	if strings.HasPrefix(u.Host, "[") {
		check = p.checkIPv6Literal
	}
	if err := check(host); err != nil {
		return nil, err
	}
	return u, nil
}

// checkIPv6Literal checks a host that was written in brackets.
func (p Policy) checkIPv6Literal(host string) error {
	addr, err := netip.ParseAddr(host)
	if err != nil || !addr.Is6() {
		return invalidf("host [%s] is not an IPv6 address", host)
	}
	if addr.Zone() != "" {
		return invalidf("host [%s] has an IPv6 zone, which only names a local interface", host)
	}
	return p.CheckAddr(addr)
}

// checkHostName checks a host that is a DNS name or an IPv4 address.
func (p Policy) checkHostName(host string) error {
	if len(host) > 253 {
		return invalidf("host is %d bytes long, the limit is 253", len(host))
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return invalidf("host %q has characters not allowed in a DNS name (internationalised names must be written in punycode)", host)
		}
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return invalidf("host %q has an empty label or one longer than 63 bytes", host)
		}
	}
	// As in the WHATWG URL standard, a host whose last label is a number is
	// an IPv4 address. Only the canonical spelling is accepted: the others
	// (hex, octal, fewer than four parts) mean different things to different
	// parsers, and are a classic way to smuggle 127.0.0.1 past a filter.
	if !isNumericLabel(labels[len(labels)-1]) {
		return nil
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !addr.Is4() {
		return invalidf("host %q looks like an IPv4 address but is not a canonical dotted quad such as 192.0.2.1", host)
	}
	return p.CheckAddr(addr)
}

// isNumericLabel reports whether a DNS label would be read as a number by an
// IPv4 parser: decimal (including octal with a leading 0) or 0x-prefixed hex.
func isNumericLabel(l string) bool {
	digits := "0123456789"
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		l, digits = l[2:], "0123456789abcdefABCDEF"
		if l == "" {
			return true // "0x" alone is zero to WHATWG and inet_aton
		}
	}
	if l == "" {
		return false
	}
	for i := 0; i < len(l); i++ {
		if !strings.ContainsRune(digits, rune(l[i])) {
			return false
		}
	}
	return true
}

// invalidf returns an error wrapping ErrInvalidURL.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidURL, fmt.Sprintf(format, args...))
}

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// CheckURLResolving is CheckURL, then, for a host given as a name, a DNS
// lookup (through r, or net.DefaultResolver when nil) that refuses the URL
// when any address the name resolves to is blocked: a subscription to
// http://localhost or to a name pointing into a private network is refused
// when it is created, not only when a delivery would dial it. A name that
// does not resolve (yet) is accepted: the delivery's dial-time check stays
// the guard, also against names that change later.
func (p Policy) CheckURLResolving(ctx context.Context, raw string, r Resolver) (*url.URL, error) {
	u, err := p.CheckURL(raw)
	if err != nil {
		return nil, err
	}
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err == nil {
		return u, nil // an address, checked by CheckURL
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return u, nil
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			return nil, fmt.Errorf("host %s resolves to a blocked address: %w", host, err)
		}
	}
	return u, nil
}
