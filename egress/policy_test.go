package egress_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/userhooks/userhooks/egress"
)

func TestAllowedAddr_BlocksNonPublicAddresses(t *testing.T) {
	tests := []struct {
		addr       string
		wantReason string
	}{
		// IPv4.
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"10.0.0.1", "private network"},
		{"10.255.255.255", "private network"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.255", "carrier-grade NAT"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"169.254.169.254", "link-local"},
		{"169.254.0.1", "link-local"},
		{"172.16.0.1", "private network"},
		{"172.31.255.255", "private network"},
		{"192.0.0.8", "IETF protocol assignments"},
		{"192.0.2.1", "documentation"},
		{"192.88.99.1", "6to4 relay"},
		{"192.168.1.1", "private network"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.254", "reserved"},
		{"255.255.255.255", "broadcast"},

		// IPv4-mapped IPv6 is judged as the IPv4 address.
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:7f00:1", "loopback"},
		{"::ffff:10.0.0.1", "private network"},
		{"::ffff:169.254.169.254", "link-local"},
		{"::ffff:0.0.0.0", "unspecified"},

		// IPv6 addresses that embed an IPv4 address.
		{"64:ff9b::7f00:1", "NAT64 address embedding 127.0.0.1: loopback"},
		{"64:ff9b::10.0.0.1", "NAT64 address embedding 10.0.0.1: private network"},
		{"64:ff9b::192.168.0.1", "NAT64 address embedding 192.168.0.1: private network"},
		{"64:ff9b::a9fe:a9fe", "NAT64 address embedding 169.254.169.254: link-local"},
		{"2002:7f00:1::", "6to4 address embedding 127.0.0.1: loopback"},
		{"2002:a00:1::1", "6to4 address embedding 10.0.0.1: private network"},
		{"::127.0.0.1", "IPv4-compatible address embedding 127.0.0.1: loopback"},
		{"::10.0.0.1", "IPv4-compatible address embedding 10.0.0.1: private network"},

		// IPv6.
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"fd00:ec2::254", "unique local"},
		{"fc00::1", "unique local"},
		{"fdff:ffff::1", "unique local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"febf::1", "link-local"},
		{"fec0::1", "site-local"},
		{"ff02::1", "multicast"},
		{"ff05::1:3", "multicast"},
		{"100::1", "discard-only"},
		{"2001:db8::1", "documentation"},
		{"3fff::1", "documentation"},
		{"2001::1", "Teredo"},
		{"2001:2::1", "benchmarking"},
		{"64:ff9b:1::1", "local-use NAT64"},
		{"4000::1", "2000::/3"},
		{"5f00::1", "2000::/3"},
	}
	var p egress.Policy
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tt.addr)
			if p.AllowedAddr(a) {
				t.Fatalf("AllowedAddr(%s) = true, want false", a)
			}
			var be *egress.BlockedError
			if err := p.CheckAddr(a); !errors.As(err, &be) {
				t.Fatalf("CheckAddr(%s) = %v, want a *BlockedError", a, err)
			}
			if be.Addr != a {
				t.Errorf("BlockedError.Addr = %s, want %s", be.Addr, a)
			}
			if !strings.Contains(be.Reason, tt.wantReason) {
				t.Errorf("BlockedError.Reason = %q, want it to contain %q", be.Reason, tt.wantReason)
			}
		})
	}
}

func TestAllowedAddr_BlocksInvalidAddress(t *testing.T) {
	if (egress.Policy{}).AllowedAddr(netip.Addr{}) {
		t.Fatal("AllowedAddr(zero Addr) = true, want false")
	}
}

func TestAllowedAddr_AllowsPublicAddresses(t *testing.T) {
	tests := []string{
		"8.8.8.8",
		"1.1.1.1",
		"11.0.0.1",
		"100.63.255.255",
		"100.128.0.0",
		"169.253.255.255",
		"172.15.255.255",
		"172.32.0.0",
		"192.0.1.1",
		"192.169.0.1",
		"198.17.255.255",
		"198.20.0.0",
		"223.255.255.255",
		"2606:4700:4700::1111",
		"2001:4860:4860::8888",
		"2a00:1450:4001::1",
		"::ffff:8.8.8.8",
		"64:ff9b::8.8.8.8",
		"2002:808:808::1",
	}
	var p egress.Policy
	for _, s := range tests {
		t.Run(s, func(t *testing.T) {
			a := netip.MustParseAddr(s)
			if err := p.CheckAddr(a); err != nil {
				t.Fatalf("CheckAddr(%s) = %v, want nil", a, err)
			}
			if !p.AllowedAddr(a) {
				t.Fatalf("AllowedAddr(%s) = false, want true", a)
			}
		})
	}
}

func TestAllowedAddr_AllowCIDRsMakeExceptions(t *testing.T) {
	p := egress.Policy{AllowCIDRs: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("fd00::/8"),
	}}
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.3.2.1", true},
		{"::ffff:127.0.0.1", true},
		{"64:ff9b::127.0.0.1", true},
		{"10.1.2.3", true},
		{"10.2.0.1", false},
		{"fd12::1", true},
		{"fd00:ec2::254", true},
		{"fc00::1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false},
		{"::1", false},
		{"8.8.8.8", true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := p.AllowedAddr(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Fatalf("AllowedAddr(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestBlockedError_SaysAddressAndReason(t *testing.T) {
	tests := []struct {
		addr string
		want string
	}{
		{"10.0.0.1", "address 10.0.0.1 is blocked (private network)"},
		{"::ffff:127.0.0.1", "address ::ffff:127.0.0.1 is blocked (loopback)"},
		{"64:ff9b::a00:1", "address 64:ff9b::a00:1 is blocked (NAT64 address embedding 10.0.0.1: private network)"},
	}
	for _, tt := range tests {
		err := (egress.Policy{}).CheckAddr(netip.MustParseAddr(tt.addr))
		if err == nil || err.Error() != tt.want {
			t.Errorf("CheckAddr(%s) = %v, want %q", tt.addr, err, tt.want)
		}
	}
}

func TestIsBlocked_SeesThroughWrapping(t *testing.T) {
	blocked := &egress.BlockedError{Addr: netip.MustParseAddr("10.0.0.1"), Reason: "private network"}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"other error", errors.New("connection refused"), false},
		{"blocked", blocked, true},
		{"wrapped", fmt.Errorf("deliver: %w", blocked), true},
		{"joined", errors.Join(errors.New("x"), blocked), true},
		{"invalid URL", egress.ErrInvalidURL, false},
	}
	for _, tt := range tests {
		if got := egress.IsBlocked(tt.err); got != tt.want {
			t.Errorf("IsBlocked(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
