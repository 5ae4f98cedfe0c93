// Package egress makes the outbound HTTP requests that deliver webhooks to
// URLs chosen by strangers, without letting those URLs reach our own
// network: loopback, private ranges, cloud metadata endpoints and every
// other address that is not global unicast are refused unless a Policy
// explicitly allows them.
//
// Checks happen twice. CheckURL rejects bad URLs when a subscription is
// created, with an error worth showing to its owner. NewClient's dialer
// checks the address each connection actually goes to, after DNS
// resolution, so a hostname that resolves (or later re-resolves) to an
// internal address is refused too.
package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Policy decides which destinations webhooks may be delivered to. The zero
// value is the production policy: https only, global unicast addresses only.
// A Policy is safe for concurrent use as long as it is not modified.
type Policy struct {
	// AllowCIDRs are explicit exceptions to the blocked ranges, such as
	// 127.0.0.0/8 for local development and tests. Addresses are matched
	// after IPv4-mapped IPv6 addresses are unmapped, so list IPv4 ranges in
	// IPv4 form.
	AllowCIDRs []netip.Prefix
	// AllowHTTP permits plain http URLs; by default only https is allowed.
	AllowHTTP bool
}

// BlockedError reports a destination address the policy refuses.
type BlockedError struct {
	// Addr is the address as it was checked (before any unmapping).
	Addr netip.Addr
	// Reason names the range the address falls in, e.g. "private network".
	Reason string
}

// Error says which address was blocked and why.
func (e *BlockedError) Error() string {
	return fmt.Sprintf("address %s is blocked (%s)", e.Addr, e.Reason)
}

// IsBlocked reports whether err is, or wraps, a *BlockedError: the request
// was refused by policy rather than failing on the network. A delivery
// blocked by policy will not succeed on retry.
func IsBlocked(err error) bool {
	var be *BlockedError
	return errors.As(err, &be)
}

// blockedRange is one row of the table of non-public address ranges.
type blockedRange struct {
	prefix netip.Prefix
	reason string
}

// blockedRanges lists every range a webhook may not be delivered to unless
// a Policy allows it: RFC 6890's special-purpose registries, minus the few
// entries that are globally reachable anycast services. The first matching
// row gives the reason, so narrower rows come before wider ones.
var blockedRanges = []blockedRange{
	// IPv4.
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (\"this network\")"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local, includes cloud metadata"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private network"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast (deprecated)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private network"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},

	// IPv6. Anything outside 2000::/3 is refused afterwards anyway (see
	// checkAddr); these rows exist to give the common cases a clear reason.
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001::/32"), "Teredo tunnelling"},
	{netip.MustParsePrefix("2001:2::/48"), "benchmarking"},
	{netip.MustParsePrefix("2001:10::/28"), "ORCHID (deprecated)"},
	{netip.MustParsePrefix("2001:20::/28"), "ORCHIDv2"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
	{netip.MustParsePrefix("fc00::/7"), "private network (unique local)"}, // includes AWS metadata fd00:ec2::254
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// embeddingRange is an IPv6 range whose addresses carry an IPv4 address
// that the traffic ends up at; such addresses are judged by that IPv4
// address.
type embeddingRange struct {
	prefix netip.Prefix
	offset int // byte offset of the IPv4 address in the 16-byte form
	name   string
}

// embeddingRanges are checked after blockedRanges, so that :: and ::1
// (which lie inside ::/96) keep their own reasons.
var embeddingRanges = []embeddingRange{
	{netip.MustParsePrefix("64:ff9b::/96"), 12, "NAT64"},
	{netip.MustParsePrefix("2002::/16"), 2, "6to4"},
	{netip.MustParsePrefix("::/96"), 12, "IPv4-compatible"},
}

// globalUnicast6 is the only IPv6 range IANA allocates for global unicast.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// AllowedAddr reports whether a webhook may be delivered to a. IPv4-mapped
// IPv6 addresses are judged as the IPv4 address they map, and NAT64, 6to4
// and IPv4-compatible addresses as the IPv4 address they embed; IPv6 zones
// are ignored. Only global unicast addresses pass, unless a is inside one of
// p.AllowCIDRs.
func (p Policy) AllowedAddr(a netip.Addr) bool {
	return p.CheckAddr(a) == nil
}

// CheckAddr is AllowedAddr with a reason: it returns nil if a webhook may be
// delivered to a, and a *BlockedError naming the blocked range otherwise.
func (p Policy) CheckAddr(a netip.Addr) error {
	if reason, blocked := p.blockReason(a); blocked {
		return &BlockedError{Addr: a, Reason: reason}
	}
	return nil
}

// blockReason returns why a is blocked, or blocked=false.
func (p Policy) blockReason(a netip.Addr) (reason string, blocked bool) {
	if !a.IsValid() {
		return "invalid address", true
	}
	// netip.Prefix.Contains never matches a zoned address, which would let
	// fe80::1%eth0 through every row below; the zone picks an interface, not
	// a destination, so drop it.
	a = a.Unmap().WithZone("")
	for _, allowed := range p.AllowCIDRs {
		if allowed.Contains(a) {
			return "", false
		}
	}
	for _, r := range blockedRanges {
		if r.prefix.Contains(a) {
			return r.reason, true
		}
	}
	if a.Is6() {
		for _, e := range embeddingRanges {
			if !e.prefix.Contains(a) {
				continue
			}
			b := a.As16()
			v4 := netip.AddrFrom4([4]byte(b[e.offset : e.offset+4]))
			if inner, blocked := p.blockReason(v4); blocked {
				return fmt.Sprintf("%s address embedding %s: %s", e.name, v4, inner), true
			}
			return "", false
		}
		if !globalUnicast6.Contains(a) {
			return "outside the IPv6 global unicast range 2000::/3", true
		}
	}
	if !a.IsGlobalUnicast() {
		return "not global unicast", true
	}
	return "", false
}

// ParsePolicy builds a policy from its text form, as flags and environment
// variables give it: allowCIDRs is a comma-separated list of CIDRs such as
// "127.0.0.0/8, 10.1.0.0/16" (empty allows none).
func ParsePolicy(allowCIDRs string, allowHTTP bool) (Policy, error) {
	p := Policy{AllowHTTP: allowHTTP}
	for _, s := range strings.Split(allowCIDRs, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("allowed CIDRs: %q is not a CIDR such as 127.0.0.0/8", s)
		}
		p.AllowCIDRs = append(p.AllowCIDRs, pfx)
	}
	return p, nil
}
