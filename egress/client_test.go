package egress_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/userhooks/userhooks/egress"
)

// These tests only ever send traffic to loopback listeners they start.

var loopbackOnly = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// countingServer starts an httptest server on 127.0.0.1 that answers 204
// and counts requests.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestNewClient_RefusesLoopbackByDefault(t *testing.T) {
	srv, hits := countingServer(t)
	client := egress.NewClient(egress.Policy{}, 5*time.Second)

	resp, err := client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s succeeded with status %d, want a blocked dial", srv.URL, resp.StatusCode)
	}
	if !egress.IsBlocked(err) {
		t.Fatalf("GET %s error = %v, want IsBlocked", srv.URL, err)
	}
	var be *egress.BlockedError
	if !errors.As(err, &be) {
		t.Fatalf("GET %s error = %v, want a *BlockedError in the chain", srv.URL, err)
	}
	if be.Addr != netip.MustParseAddr("127.0.0.1") || be.Reason != "loopback" {
		t.Errorf("BlockedError = %+v, want 127.0.0.1 loopback", be)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

func TestNewClient_ReachesLoopbackWhenAllowed(t *testing.T) {
	srv, hits := countingServer(t)
	client := egress.NewClient(egress.Policy{AllowCIDRs: loopbackOnly, AllowHTTP: true}, 5*time.Second)

	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET %s: %v", srv.URL, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("status = %d, want %d", resp.StatusCode, http.StatusNoContent)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestNewClient_ReturnsRedirectsUnfollowed(t *testing.T) {
	target, targetHits := countingServer(t)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusFound)
	}))
	t.Cleanup(redirector.Close)
	client := egress.NewClient(egress.Policy{AllowCIDRs: loopbackOnly, AllowHTTP: true}, 5*time.Second)

	resp, err := client.Post(redirector.URL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatalf("POST %s: %v", redirector.URL, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("status = %d, want %d (the redirect itself)", resp.StatusCode, http.StatusFound)
	}
	if loc := resp.Header.Get("Location"); loc != target.URL+"/elsewhere" {
		t.Errorf("Location = %q, want %q", loc, target.URL+"/elsewhere")
	}
	if n := targetHits.Load(); n != 0 {
		t.Errorf("redirect target saw %d requests, want 0", n)
	}
}

// A name is checked by the address it resolves to when dialled, not by how
// it is spelled: this is what stops DNS names pointing at internal hosts
// and DNS rebinding.
func TestNewClient_BlocksHostnameResolvingToLoopback(t *testing.T) {
	addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", "localhost")
	if err != nil || len(addrs) == 0 {
		t.Skipf("localhost does not resolve here: %v", err)
	}
	srv, hits := countingServer(t)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rawURL := "http://localhost:" + port + "/hook"
	client := egress.NewClient(egress.Policy{AllowHTTP: true}, 5*time.Second)

	resp, err := client.Get(rawURL)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s succeeded with status %d, want a blocked dial", rawURL, resp.StatusCode)
	}
	if !egress.IsBlocked(err) {
		t.Fatalf("GET %s error = %v, want IsBlocked", rawURL, err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

func TestNewClient_RefusesIPv6Loopback(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	var hits atomic.Int32
	srv := &httptest.Server{
		Listener: ln,
		Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
		})},
	}
	srv.Start()
	t.Cleanup(srv.Close)
	// Allowing 127.0.0.0/8 must not open ::1.
	client := egress.NewClient(egress.Policy{AllowCIDRs: loopbackOnly, AllowHTTP: true}, 5*time.Second)

	resp, err := client.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s succeeded, want a blocked dial", srv.URL)
	}
	if !egress.IsBlocked(err) {
		t.Fatalf("GET %s error = %v, want IsBlocked", srv.URL, err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

func TestNewClient_TransportIsHardened(t *testing.T) {
	client := egress.NewClient(egress.Policy{}, 7*time.Second)
	if client.Timeout != 7*time.Second {
		t.Errorf("Timeout = %s, want 7s", client.Timeout)
	}
	if client.CheckRedirect == nil {
		t.Error("CheckRedirect is nil, so redirects would be followed")
	} else if err := client.CheckRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
		t.Errorf("CheckRedirect = %v, want http.ErrUseLastResponse", err)
	}
	tr, ok := client.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("Transport is %T, want *http.Transport", client.Transport)
	}
	if tr.Proxy != nil {
		t.Error("Transport.Proxy is set; environment proxies must never be used")
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion < tls.VersionTLS12 {
		t.Error("TLS minimum version is below 1.2")
	}
	if tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("TLS certificate verification is disabled")
	}
	if !tr.ForceAttemptHTTP2 {
		t.Error("ForceAttemptHTTP2 is false")
	}
	if tr.DialContext == nil || tr.DialTLSContext != nil || tr.Dial != nil || tr.DialTLS != nil {
		t.Error("connections must all go through the checking DialContext")
	}
	for name, d := range map[string]time.Duration{
		"TLSHandshakeTimeout":   tr.TLSHandshakeTimeout,
		"ResponseHeaderTimeout": tr.ResponseHeaderTimeout,
		"IdleConnTimeout":       tr.IdleConnTimeout,
	} {
		if d <= 0 {
			t.Errorf("%s = %s, want a limit", name, d)
		}
	}
	if tr.ResponseHeaderTimeout > client.Timeout {
		t.Errorf("ResponseHeaderTimeout %s exceeds the client timeout %s", tr.ResponseHeaderTimeout, client.Timeout)
	}
}
