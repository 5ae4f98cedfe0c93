package egress_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/userhooks/userhooks/egress"
)

func TestCheckURL_AcceptsPublicURLs(t *testing.T) {
	tests := []struct {
		name     string
		policy   egress.Policy
		raw      string
		wantHost string
	}{
		{"https name", egress.Policy{}, "https://example.com/hook", "example.com"},
		{"port, query and fragment", egress.Policy{}, "https://Hooks.Example.com:8443/a/b?c=d#e", "Hooks.Example.com"},
		{"trailing dot", egress.Policy{}, "https://example.com./hook", "example.com."},
		{"hex-looking name", egress.Policy{}, "https://cafe.be/", "cafe.be"},
		{"digits in labels", egress.Policy{}, "https://123.example.com/", "123.example.com"},
		{"underscore", egress.Policy{}, "https://under_score.example.com/", "under_score.example.com"},
		{"punycode", egress.Policy{}, "https://xn--bcher-kva.example/", "xn--bcher-kva.example"},
		{"uppercase scheme", egress.Policy{}, "HTTPS://example.com/", "example.com"},
		{"public IPv4", egress.Policy{}, "https://8.8.8.8/hook", "8.8.8.8"},
		{"public IPv6", egress.Policy{}, "https://[2606:4700:4700::1111]:443/hook", "2606:4700:4700::1111"},
		{"http when allowed", egress.Policy{AllowHTTP: true}, "http://example.com/hook", "example.com"},
		{"longest allowed", egress.Policy{}, "https://example.com/" + strings.Repeat("a", egress.MaxURLLength-len("https://example.com/")), "example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := tt.policy.CheckURL(tt.raw)
			if err != nil {
				t.Fatalf("CheckURL(%q) = %v, want nil", tt.raw, err)
			}
			if u.Hostname() != tt.wantHost {
				t.Errorf("CheckURL(%q).Hostname() = %q, want %q", tt.raw, u.Hostname(), tt.wantHost)
			}
		})
	}
}

func TestCheckURL_RejectsUnsafeURLs(t *testing.T) {
	const (
		invalid = false
		blocked = true
	)
	tests := []struct {
		name        string
		raw         string
		wantBlocked bool
		wantMsg     string
	}{
		// Credentials.
		{"user and password", "https://ada:hunter2@example.com/", invalid, "credentials"},
		{"user only", "https://ada@example.com/", invalid, "credentials"},
		{"empty user info", "https://@example.com/", invalid, "credentials"},

		// Schemes.
		{"ftp", "ftp://example.com/", invalid, `scheme "ftp" is not allowed`},
		{"http by default", "http://example.com/hook", invalid, "scheme http is not allowed"},
		{"file", "file:///etc/passwd", invalid, `scheme "file"`},
		{"gopher", "gopher://example.com:70/", invalid, `scheme "gopher"`},
		{"no scheme", "example.com/hook", invalid, "no scheme"},
		{"scheme-relative", "//example.com/hook", invalid, "no scheme"},
		{"opaque", "https:example.com", invalid, "not hierarchical"},

		// Shape.
		{"empty", "", invalid, "no scheme"},
		{"no host", "https:///hook", invalid, "no host"},
		{"only scheme", "https://", invalid, "no host"},
		{"port only", "https://:443/", invalid, "no host"},
		{"too long", "https://example.com/" + strings.Repeat("a", egress.MaxURLLength), invalid, "limit is 2048"},
		{"port zero", "https://example.com:0/", invalid, "port"},
		{"port too big", "https://example.com:65536/", invalid, "port"},
		{"space in host", "https://exa mple.com/", invalid, "invalid character"},
		{"percent-encoded ASCII host", "https://%31%32%37.0.0.1/", invalid, "invalid URL escape"},
		{"unicode host", "https://b\u00fccher.example/", invalid, "punycode"},
		{"fullwidth digits", "https://\uff11\uff12\uff17.0.0.1/", invalid, "punycode"},
		{"empty label", "https://a..example.com/", invalid, "empty label"},
		{"IPv6 zone", "https://[fe80::1%25eth0]/", invalid, "zone"},

		// Odd IPv4 spellings.
		{"decimal integer", "https://2130706433/", invalid, "canonical dotted quad"},
		{"hex integer", "https://0x7f000001/", invalid, "canonical dotted quad"},
		{"octal integer", "https://017700000001/", invalid, "canonical dotted quad"},
		{"hex first octet", "https://0x7f.0.0.1/", invalid, "canonical dotted quad"},
		{"uppercase hex", "https://0X7F.0.0.1/", invalid, "canonical dotted quad"},
		{"octal first octet", "https://0177.0.0.1/", invalid, "canonical dotted quad"},
		{"two parts", "https://127.1/", invalid, "canonical dotted quad"},
		{"three parts", "https://127.0.1/", invalid, "canonical dotted quad"},
		{"leading zero in public address", "https://8.8.8.08/", invalid, "canonical dotted quad"},
		{"trailing dot", "https://127.0.0.1./", invalid, "canonical dotted quad"},
		{"five parts", "https://1.2.3.4.5/", invalid, "canonical dotted quad"},
		{"octet over 255", "https://256.0.0.1/", invalid, "canonical dotted quad"},
		{"bare 0x", "https://0x/", invalid, "canonical dotted quad"},
		{"name ending in a number", "https://example.123/", invalid, "canonical dotted quad"},

		// Blocked IP literals.
		{"IPv4 loopback", "https://127.0.0.1/", blocked, "loopback"},
		{"IPv4 loopback with port", "https://127.0.0.1:8443/hook", blocked, "loopback"},
		{"private", "https://10.0.0.1/", blocked, "private network"},
		{"cloud metadata", "https://169.254.169.254/latest/meta-data/", blocked, "link-local"},
		{"unspecified", "https://0.0.0.0/", blocked, "unspecified"},
		{"IPv6 loopback", "https://[::1]/", blocked, "loopback"},
		{"IPv4-mapped loopback", "https://[::ffff:127.0.0.1]/", blocked, "loopback"},
		{"IPv4-mapped loopback in hex", "https://[::ffff:7f00:1]/", blocked, "loopback"},
		{"AWS IPv6 metadata", "https://[fd00:ec2::254]/", blocked, "unique local"},
		{"NAT64 metadata", "https://[64:ff9b::a9fe:a9fe]/", blocked, "169.254.169.254"},
		{"IPv6 link-local", "https://[fe80::1]/", blocked, "link-local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := (egress.Policy{}).CheckURL(tt.raw)
			if err == nil {
				t.Fatalf("CheckURL(%q) = %v, nil; want an error", tt.raw, u)
			}
			if u != nil {
				t.Errorf("CheckURL(%q) returned URL %v with error %v, want nil", tt.raw, u, err)
			}
			if got := egress.IsBlocked(err); got != tt.wantBlocked {
				t.Errorf("IsBlocked(%v) = %v, want %v", err, got, tt.wantBlocked)
			}
			if got := errors.Is(err, egress.ErrInvalidURL); got == tt.wantBlocked {
				t.Errorf("errors.Is(%v, ErrInvalidURL) = %v, want %v", err, got, !tt.wantBlocked)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("CheckURL(%q) error %q does not mention %q", tt.raw, err, tt.wantMsg)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("CheckURL error %q discloses the password", err)
			}
		})
	}
}

func TestCheckURL_AllowCIDRsPermitLoopbackForDevelopment(t *testing.T) {
	p := egress.Policy{AllowHTTP: true, AllowCIDRs: loopbackOnly}
	for _, raw := range []string{"http://127.0.0.1:8080/hook", "https://127.0.0.1/hook", "http://[::ffff:127.0.0.1]:8080/"} {
		if _, err := p.CheckURL(raw); err != nil {
			t.Errorf("CheckURL(%q) = %v, want nil", raw, err)
		}
	}
	// The exception covers addresses, not odd spellings of them.
	if _, err := p.CheckURL("http://127.1:8080/"); !errors.Is(err, egress.ErrInvalidURL) {
		t.Errorf("CheckURL(127.1) = %v, want ErrInvalidURL", err)
	}
}

func TestCheckURL_ParseErrorDoesNotRepeatURL(t *testing.T) {
	raw := "https://ada:hunter2@exa mple.com/"
	_, err := (egress.Policy{}).CheckURL(raw)
	if !errors.Is(err, egress.ErrInvalidURL) {
		t.Fatalf("CheckURL(%q) = %v, want ErrInvalidURL", raw, err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("CheckURL error %q discloses the password", err)
	}
}

// fakeResolver answers from a table; names it lacks do not resolve.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestCheckURLResolving_RefusesNamesThatResolveToBlockedAddresses(t *testing.T) {
	r := fakeResolver{
		"public.example":   {netip.MustParseAddr("93.184.216.34")},
		"internal.example": {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.1.2.3")},
		"metadata.example": {netip.MustParseAddr("169.254.169.254")},
		"mapped.example":   {netip.MustParseAddr("::ffff:127.0.0.1")},
		"allowed.example":  {netip.MustParseAddr("127.0.0.1")},
	}
	p := egress.Policy{}
	tests := []struct {
		url     string
		policy  egress.Policy
		blocked bool
	}{
		{url: "https://public.example/hooks"},
		{url: "https://not-yet-registered.example/hooks"}, // the dial-time check guards it
		{url: "https://internal.example/hooks", blocked: true},
		{url: "https://metadata.example/latest", blocked: true},
		{url: "https://mapped.example/", blocked: true},
		{url: "https://allowed.example/", blocked: true},
		{url: "https://allowed.example/", policy: egress.Policy{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}},
		{url: "https://10.0.0.1/", blocked: true},
	}
	for _, tt := range tests {
		pol := p
		if tt.policy.AllowCIDRs != nil {
			pol = tt.policy
		}
		_, err := pol.CheckURLResolving(t.Context(), tt.url, r)
		if got := egress.IsBlocked(err); got != tt.blocked {
			t.Errorf("CheckURLResolving(%s) error = %v, blocked %v, want %v", tt.url, err, got, tt.blocked)
		}
	}
	if _, err := p.CheckURLResolving(t.Context(), "http://public.example/", r); !errors.Is(err, egress.ErrInvalidURL) {
		t.Errorf("plain http: error = %v, want ErrInvalidURL", err)
	}
}
