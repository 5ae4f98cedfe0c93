package payloadcodec_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/userhooks/userhooks/payloadcodec"
)

const (
	token    = "s3cret-codec-token-0123456789"
	uiOrigin = "http://localhost:8233"
)

func newHandler(t testing.TB, k *payloadcodec.Keyring, opts payloadcodec.HandlerOptions) http.Handler {
	t.Helper()
	h, err := payloadcodec.NewHTTPHandler(k, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func defaultOptions() payloadcodec.HandlerOptions {
	return payloadcodec.HandlerOptions{
		Token:             token,
		AllowedNamespaces: []string{"default", "userhooks-prod"},
		AllowedOrigins:    []string{uiOrigin, "http://127.0.0.1:8233/"},
	}
}

func payloadsJSON(t testing.TB, ps []*commonpb.Payload) []byte {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type request struct {
	method, path string
	body         []byte
	header       map[string]string
	remoteAddr   string // httptest's 192.0.2.1:1234 when empty
}

// do sends r to h with the token, the default namespace and a JSON content
// type unless r.header says otherwise ("" removes a header).
func do(h http.Handler, r request) *httptest.ResponseRecorder {
	if r.method == "" {
		r.method = http.MethodPost
	}
	req := httptest.NewRequest(r.method, "http://codec.example"+r.path, bytes.NewReader(r.body))
	if r.remoteAddr != "" {
		req.RemoteAddr = r.remoteAddr
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Namespace", "default")
	req.Header.Set("Content-Type", "application/json")
	for k, v := range r.header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func decodeResponse(t *testing.T, w *httptest.ResponseRecorder) []*commonpb.Payload {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var ps commonpb.Payloads
	if err := protojson.Unmarshal(w.Body.Bytes(), &ps); err != nil {
		t.Fatalf("response is not payloads JSON: %v: %s", err, w.Body)
	}
	return ps.Payloads
}

func TestHandler_EncodeThenDecodeRoundTripsWithTheToken(t *testing.T) {
	k := keyring(t, "k1")
	h := newHandler(t, k, defaultOptions())
	plain := jsonPayloads(t, ada, 42)
	for _, prefix := range []string{"", "/default", "/codec/v1"} {
		t.Run("prefix "+prefix, func(t *testing.T) {
			enc := decodeResponse(t, do(h, request{path: prefix + "/encode", body: payloadsJSON(t, plain)}))
			if len(enc) != 2 || strings.Contains(string(payloadsJSON(t, enc)), "lovelace") {
				t.Fatalf("encode answered %v", enc)
			}
			// What the server encrypted, the library decrypts, and back.
			local, err := payloadcodec.NewCodec(k).Decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			assertEqualPayloads(t, local, plain)
			dec := decodeResponse(t, do(h, request{path: prefix + "/decode", body: payloadsJSON(t, enc)}))
			assertEqualPayloads(t, dec, plain)
		})
	}
}

func TestHandler_RefusesRequestsWithoutTheRightToken(t *testing.T) {
	h := newHandler(t, keyring(t, "k1"), defaultOptions())
	body := payloadsJSON(t, jsonPayloads(t, ada))
	for name, auth := range map[string]string{
		"none":             "",
		"wrong token":      "Bearer not-the-token-0123456789",
		"token prefix":     "Bearer " + token[:len(token)-1],
		"token extended":   "Bearer " + token + "x",
		"basic scheme":     "Basic " + token,
		"token alone":      token,
		"bearer, no token": "Bearer ",
	} {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{"/decode", "/encode"} {
				w := do(h, request{path: path, body: body, header: map[string]string{"Authorization": auth}})
				if w.Code != http.StatusUnauthorized {
					t.Errorf("%s: status %d, want 401", path, w.Code)
				}
				if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s: WWW-Authenticate %q", path, w.Header().Get("WWW-Authenticate"))
				}
				if strings.Contains(w.Body.String(), "payloads") {
					t.Errorf("%s: answered payloads: %s", path, w.Body)
				}
			}
		})
	}
	if w := do(h, request{path: "/decode", body: body, header: map[string]string{"Authorization": "bearer " + token}}); w.Code != http.StatusOK {
		t.Errorf("lower-case bearer scheme: status %d", w.Code)
	}
}

func TestHandler_VerifyTokenAcceptsOtherTokens(t *testing.T) {
	opts := defaultOptions()
	opts.Token = ""
	opts.VerifyToken = func(_ context.Context, tok string) error {
		if tok == "oidc-access-token" {
			return nil
		}
		return errors.New("invalid")
	}
	h := newHandler(t, keyring(t, "k1"), opts)
	body := payloadsJSON(t, jsonPayloads(t, ada))
	if w := do(h, request{path: "/decode", body: body, header: map[string]string{"Authorization": "Bearer oidc-access-token"}}); w.Code != http.StatusOK {
		t.Errorf("verified token: status %d", w.Code)
	}
	if w := do(h, request{path: "/decode", body: body}); w.Code != http.StatusUnauthorized {
		t.Errorf("unverified token: status %d", w.Code)
	}
}

func TestNewHTTPHandler_RefusesUnsafeConfigurations(t *testing.T) {
	k := keyring(t, "k1")
	for name, tc := range map[string]struct {
		k    *payloadcodec.Keyring
		opts payloadcodec.HandlerOptions
	}{
		"no token":                  {k, payloadcodec.HandlerOptions{}},
		"short token":               {k, payloadcodec.HandlerOptions{Token: "short"}},
		"token with a space":        {k, payloadcodec.HandlerOptions{Token: "0123456789 abcdefgh"}},
		"wildcard origin":           {k, payloadcodec.HandlerOptions{Token: token, AllowedOrigins: []string{"*"}}},
		"null origin":               {k, payloadcodec.HandlerOptions{Token: token, AllowedOrigins: []string{"null"}}},
		"origin with a path":        {k, payloadcodec.HandlerOptions{Token: token, AllowedOrigins: []string{"http://localhost:8233/namespaces"}}},
		"origin without scheme":     {k, payloadcodec.HandlerOptions{Token: token, AllowedOrigins: []string{"localhost:8233"}}},
		"empty namespace":           {k, payloadcodec.HandlerOptions{Token: token, AllowedNamespaces: []string{""}}},
		"nil keyring":               {nil, payloadcodec.HandlerOptions{Token: token}},
		"keyring without keys":      {&payloadcodec.Keyring{}, payloadcodec.HandlerOptions{Token: token}},
		"unauthenticated, not said": {k, payloadcodec.HandlerOptions{AllowedOrigins: []string{uiOrigin}}},
	} {
		t.Run(name, func(t *testing.T) {
			if h, err := payloadcodec.NewHTTPHandler(tc.k, tc.opts); err == nil {
				t.Fatalf("built %v", h)
			} else if strings.Contains(err.Error(), token) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

func TestHandler_AllowUnauthenticatedServesLoopbackPeersWithoutToken(t *testing.T) {
	h := newHandler(t, keyring(t, "k1"), payloadcodec.HandlerOptions{AllowUnauthenticated: true, AllowedOrigins: []string{uiOrigin}})
	enc, _ := payloadcodec.NewCodec(keyring(t, "k1")).Encode(jsonPayloads(t, ada))
	noAuth := map[string]string{"Authorization": "", "X-Namespace": ""}
	for _, peer := range []string{"127.0.0.1:50000", "[::1]:50000", "127.8.9.10:1", "[::ffff:127.0.0.1]:2"} {
		w := do(h, request{path: "/decode", body: payloadsJSON(t, enc), header: noAuth, remoteAddr: peer})
		assertEqualPayloads(t, decodeResponse(t, w), jsonPayloads(t, ada))
	}
	for _, peer := range []string{"192.0.2.1:1234", "[2001:db8::1]:1", "10.0.0.1:80", "localhost:80", "garbage"} {
		w := do(h, request{path: "/decode", body: payloadsJSON(t, enc), header: noAuth, remoteAddr: peer})
		if w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), "lovelace") {
			t.Errorf("peer %s: status %d, want 403", peer, w.Code)
		}
	}
	// A token configured as well wins: then it is required.
	h = newHandler(t, keyring(t, "k1"), payloadcodec.HandlerOptions{Token: token, AllowUnauthenticated: true})
	if w := do(h, request{path: "/decode", body: payloadsJSON(t, enc), header: map[string]string{"Authorization": ""}, remoteAddr: "127.0.0.1:1"}); w.Code != http.StatusUnauthorized {
		t.Errorf("token and AllowUnauthenticated: status %d without token, want 401", w.Code)
	}
}

func TestHandler_CORSPreflightIsAllowedForConfiguredOriginsOnly(t *testing.T) {
	h := newHandler(t, keyring(t, "k1"), defaultOptions())
	preflight := func(origin string, extra map[string]string) *httptest.ResponseRecorder {
		hd := map[string]string{
			"Origin":                         origin,
			"Access-Control-Request-Method":  "POST",
			"Access-Control-Request-Headers": "authorization,content-type,x-namespace",
			// Browsers send preflights without credentials.
			"Authorization": "", "X-Namespace": "", "Content-Type": "",
		}
		for k, v := range extra {
			hd[k] = v
		}
		return do(h, request{method: http.MethodOptions, path: "/decode", header: hd})
	}
	for _, origin := range []string{uiOrigin, "http://127.0.0.1:8233"} {
		w := preflight(origin, nil)
		if w.Code != http.StatusNoContent {
			t.Fatalf("%s: status %d, want 204", origin, w.Code)
		}
		want := map[string]string{
			"Access-Control-Allow-Origin":      origin,
			"Access-Control-Allow-Credentials": "true",
			"Access-Control-Allow-Methods":     "POST",
		}
		for k, v := range want {
			if got := w.Header().Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", origin, k, got, v)
			}
		}
		allowed := strings.ToLower(w.Header().Get("Access-Control-Allow-Headers"))
		for _, hd := range []string{"authorization", "content-type", "x-namespace"} {
			if !strings.Contains(allowed, hd) {
				t.Errorf("%s: Access-Control-Allow-Headers %q lacks %s", origin, allowed, hd)
			}
		}
		if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Origin") {
			t.Errorf("%s: no Vary: Origin", origin)
		}
		if w.Header().Get("Access-Control-Allow-Private-Network") != "" {
			t.Errorf("%s: private network allowed unasked", origin)
		}
	}
	if w := preflight(uiOrigin, map[string]string{"Access-Control-Request-Private-Network": "true"}); w.Header().Get("Access-Control-Allow-Private-Network") != "true" {
		t.Error("private network access preflight not allowed")
	}
	for _, origin := range []string{"https://evil.example", "http://localhost:8234", "https://localhost:8233", "null"} {
		w := preflight(origin, nil)
		if w.Code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", origin, w.Code)
		}
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("%s: Access-Control-Allow-Origin %q", origin, got)
		}
	}
}

func TestHandler_BrowserRequestsFromOtherOriginsAreRefused(t *testing.T) {
	h := newHandler(t, keyring(t, "k1"), defaultOptions())
	enc, _ := payloadcodec.NewCodec(keyring(t, "k1")).Encode(jsonPayloads(t, ada))
	body := payloadsJSON(t, enc)

	w := do(h, request{path: "/decode", body: body, header: map[string]string{"Origin": uiOrigin}})
	if w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != uiOrigin || w.Header().Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("allowed origin: status %d, headers %v", w.Code, w.Header())
	}
	// Even with a valid token (a cookie-less CSRF cannot have one, but a
	// page that stole it can): no decrypted data to another origin.
	w = do(h, request{path: "/decode", body: body, header: map[string]string{"Origin": "https://evil.example"}})
	if w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), "lovelace") {
		t.Errorf("other origin: status %d, body %s", w.Code, w.Body)
	}
	// An error answered to an allowed origin is readable by the UI.
	w = do(h, request{path: "/decode", body: body, header: map[string]string{"Origin": uiOrigin, "Authorization": ""}})
	if w.Code != http.StatusUnauthorized || w.Header().Get("Access-Control-Allow-Origin") != uiOrigin {
		t.Errorf("401 to allowed origin: status %d, headers %v", w.Code, w.Header())
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}
}

func TestHandler_RestrictsNamespaces(t *testing.T) {
	h := newHandler(t, keyring(t, "k1"), defaultOptions())
	body := payloadsJSON(t, jsonPayloads(t, ada))
	for ns, want := range map[string]int{
		"default":        http.StatusOK,
		"userhooks-prod": http.StatusOK,
		"other":          http.StatusForbidden,
		"Default":        http.StatusForbidden,
		"":               http.StatusForbidden,
	} {
		if w := do(h, request{path: "/decode", body: body, header: map[string]string{"X-Namespace": ns}}); w.Code != want {
			t.Errorf("namespace %q: status %d, want %d", ns, w.Code, want)
		}
	}
	// Without a restriction, any namespace (or none) is served.
	opts := defaultOptions()
	opts.AllowedNamespaces = nil
	h = newHandler(t, keyring(t, "k1"), opts)
	if w := do(h, request{path: "/decode", body: body, header: map[string]string{"X-Namespace": ""}}); w.Code != http.StatusOK {
		t.Errorf("unrestricted, no namespace: status %d", w.Code)
	}
}

func TestHandler_CapsTheBody(t *testing.T) {
	opts := defaultOptions()
	opts.MaxBodyBytes = 1024
	h := newHandler(t, keyring(t, "k1"), opts)
	small := payloadsJSON(t, jsonPayloads(t, strings.Repeat("a", 500)))
	big := payloadsJSON(t, jsonPayloads(t, strings.Repeat("a", 2000)))
	if w := do(h, request{path: "/encode", body: small}); w.Code != http.StatusOK {
		t.Errorf("small body: status %d", w.Code)
	}
	if w := do(h, request{path: "/encode", body: big}); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("big body: status %d, want 413", w.Code)
	}
	// Length not announced (chunked): the cap applies while reading.
	req := httptest.NewRequest(http.MethodPost, "/encode", io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Namespace", "default")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("big chunked body: status %d, want 413", w.Code)
	}
}

func TestHandler_AnswersBadRequestsWithClearStatuses(t *testing.T) {
	k := keyring(t, "k1")
	h := newHandler(t, k, defaultOptions())
	foreign, _ := payloadcodec.NewCodec(keyring(t, "retired-2025")).Encode(jsonPayloads(t, ada))
	cases := []struct {
		name     string
		r        request
		want     int
		wantBody string
	}{
		{"GET", request{method: http.MethodGet, path: "/decode"}, http.StatusMethodNotAllowed, ""},
		{"OPTIONS without preflight", request{method: http.MethodOptions, path: "/decode"}, http.StatusMethodNotAllowed, ""},
		{"other path", request{path: "/decrypt", body: []byte(`{}`)}, http.StatusNotFound, ""},
		{"path with encode inside", request{path: "/encode/x", body: []byte(`{}`)}, http.StatusNotFound, ""},
		{"not JSON", request{path: "/decode", body: []byte("payloads please")}, http.StatusBadRequest, ""},
		{"empty body", request{path: "/decode"}, http.StatusBadRequest, ""},
		{"form content type", request{path: "/decode", body: []byte(`{}`), header: map[string]string{"Content-Type": "text/plain"}}, http.StatusUnsupportedMediaType, ""},
		{"unknown key ID", request{path: "/decode", body: payloadsJSON(t, foreign)}, http.StatusBadRequest, `"retired-2025"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := do(h, tc.r)
			if w.Code != tc.want {
				t.Errorf("status %d, want %d (%s)", w.Code, tc.want, w.Body)
			}
			if !strings.Contains(w.Body.String(), tc.wantBody) {
				t.Errorf("body %q does not say %q", w.Body, tc.wantBody)
			}
			assertNoKeyMaterial(t, w.Body.String(), testKey(1))
		})
	}
	// Content types with parameters, and none at all, are JSON enough.
	body := payloadsJSON(t, jsonPayloads(t, ada))
	for _, ct := range []string{"application/json; charset=utf-8", ""} {
		if w := do(h, request{path: "/decode", body: body, header: map[string]string{"Content-Type": ct}}); w.Code != http.StatusOK {
			t.Errorf("Content-Type %q: status %d", ct, w.Code)
		}
	}
}

// TestHandler_InteroperatesWithTheSDKRemoteCodec runs the handler behind a
// real HTTP server and talks to it with the SDK's own client of the
// protocol, as the temporal CLI does.
func TestHandler_InteroperatesWithTheSDKRemoteCodec(t *testing.T) {
	k := keyring(t, "k2", "k1")
	srv := httptest.NewServer(newHandler(t, k, defaultOptions()))
	defer srv.Close()
	remote := func(tok string) converter.PayloadCodec {
		return converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
			Endpoint: srv.URL,
			Client:   *srv.Client(),
			ModifyRequest: func(r *http.Request) error {
				r.Header.Set("Authorization", "Bearer "+tok)
				r.Header.Set("X-Namespace", "default")
				return nil
			},
		})
	}
	local := payloadcodec.NewCodec(k)
	plain := jsonPayloads(t, ada, "x", nil)

	// Encoded remotely, decoded locally.
	enc, err := remote(token).Encode(plain)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(enc[0].Metadata[payloadcodec.MetadataEncryptionKeyID]); got != "k2" {
		t.Errorf("remote encode used key %q, want the active k2", got)
	}
	dec, err := local.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	assertEqualPayloads(t, dec, plain)

	// Encoded locally, decoded remotely.
	enc, err = local.Encode(plain)
	if err != nil {
		t.Fatal(err)
	}
	dec, err = remote(token).Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	assertEqualPayloads(t, dec, plain)

	// A whole data converter on the remote codec agrees with ours.
	p, err := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), remote(token)).ToPayload(ada)
	if err != nil {
		t.Fatal(err)
	}
	var got eventInput
	if err := payloadcodec.NewDataConverter(k).FromPayload(p, &got); err != nil || got != ada {
		t.Errorf("remote-encoded value decoded locally: %+v, %v", got, err)
	}

	// The SDK client surfaces a refusal as an error.
	if _, err := remote("wrong-token-0123456789").Decode(enc); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("wrong token: %v, want Unauthorized", err)
	}
}

// TestStartServer_ServesTheDevSetUpToTheSDKRemoteCodec runs the local
// development shape end to end: an unauthenticated handler on loopback,
// called by the SDK's remote codec as the CLI calls it, without a token.
func TestStartServer_ServesTheDevSetUpToTheSDKRemoteCodec(t *testing.T) {
	k := keyring(t, "dev-1")
	srv, err := payloadcodec.StartServer("127.0.0.1:0", newHandler(t, k, payloadcodec.HandlerOptions{
		AllowUnauthenticated: true,
		AllowedNamespaces:    []string{"default"},
		AllowedOrigins:       []string{uiOrigin},
	}))
	if err != nil {
		t.Fatal(err)
	}
	remote := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
		Endpoint:      srv.URL(),
		ModifyRequest: func(r *http.Request) error { r.Header.Set("X-Namespace", "default"); return nil },
	})
	enc, err := payloadcodec.NewCodec(k).Encode(jsonPayloads(t, ada))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := remote.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	assertEqualPayloads(t, dec, jsonPayloads(t, ada))
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := remote.Decode(enc); err == nil {
		t.Error("the server still answers after Close")
	}
	if _, err := payloadcodec.StartServer("127.0.0.1:-1", http.NotFoundHandler()); err == nil {
		t.Error("StartServer accepted a bad address")
	}
}
