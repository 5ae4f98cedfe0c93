package egress

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Transport limits. Receivers are strangers' servers: none of them gets to
// hold a worker for long or send us unbounded headers.
const (
	dialTimeout           = 10 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 30 * time.Second
	idleConnTimeout       = 90 * time.Second
	maxResponseHeaderSize = 64 << 10
)

// NewClient returns an HTTP client for delivering webhooks under p.
//
// Every connection is checked when it is dialled, against the IP address
// actually being connected to, so DNS names that resolve (or re-resolve,
// as in DNS rebinding) to a blocked address are refused; the error then
// satisfies IsBlocked. The client never uses a proxy (environment proxy
// settings are ignored), never follows redirects (a 3xx is returned as the
// response, since a redirect target has not been checked by CheckURL),
// requires TLS 1.2 or later, and gives up on a request after timeout (zero
// means no overall limit; dial, TLS handshake and response header timeouts
// still apply).
//
// NewClient does not check URL schemes or user info: run CheckURL on a URL
// before sending to it. The client is safe for concurrent use and should be
// shared, so connections are reused.
func NewClient(p Policy, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{
		Timeout:   dialTimeout,
		KeepAlive: 30 * time.Second,
		Control:   p.dialControl,
	}
	headerTimeout := responseHeaderTimeout
	if timeout > 0 && timeout < headerTimeout {
		headerTimeout = timeout
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		ResponseHeaderTimeout:  headerTimeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        idleConnTimeout,
		MaxIdleConns:           100,
		MaxResponseHeaderBytes: maxResponseHeaderSize,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: timeout,
	}
}

// dialControl runs after DNS resolution, just before each connect(2), with
// the literal address being dialled; returning an error aborts the dial.
func (p Policy) dialControl(network, address string, _ syscall.RawConn) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fmt.Errorf("egress: network %q is not allowed", network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress: cannot check dial address %q: %w", address, err)
	}
	return p.CheckAddr(ap.Addr())
}
