package payloadcodec

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"go.temporal.io/sdk/converter"
)

// DefaultMaxBodyBytes caps a codec request body when HandlerOptions sets no
// cap: Temporal refuses payloads over 2 MiB, which are about 2.7 MiB as the
// base64 of the protocol's JSON.
const DefaultMaxBodyBytes = 4 << 20

// MinTokenLen is the shortest bearer token NewHTTPHandler accepts.
const MinTokenLen = 16

// Headers of the codec server protocol.
const (
	// HeaderNamespace carries the Temporal namespace of the payloads; the
	// Web UI and the temporal CLI send it with every request.
	HeaderNamespace = "X-Namespace"
)

// HandlerOptions configure NewHTTPHandler.
type HandlerOptions struct {
	// Token is the bearer token that clients must send as
	// "Authorization: Bearer <token>" (the temporal CLI's
	// --codec-auth "Bearer <token>"). At least MinTokenLen characters. Only
	// its SHA-256 is kept, and comparisons take constant time.
	Token string
	// VerifyToken, when set, is asked about a bearer token that is not
	// Token, and accepts it by returning nil: for example to verify the
	// OIDC access token that the Web UI passes when its codec setting
	// "pass access token" is on (the UI cannot send a fixed token).
	VerifyToken func(ctx context.Context, token string) error
	// AllowUnauthenticated serves requests without any Authorization when
	// there is neither Token nor VerifyToken: for a codec server on a
	// developer's machine, whose Web UI (`temporal server start-dev`) cannot
	// send a token. Anyone who can reach such a server can decrypt every
	// payload, so it answers only peers on a loopback address (403
	// otherwise); bind it to 127.0.0.1 too. Without this option,
	// NewHTTPHandler refuses to build an unauthenticated handler.
	AllowUnauthenticated bool
	// AllowedNamespaces, when not empty, are the only namespaces served: a
	// request must name one of them in its X-Namespace header.
	AllowedNamespaces []string
	// AllowedOrigins are the browser origins (scheme://host[:port]) allowed
	// to call the server, with credentials: the Web UI's, such as
	// http://localhost:8233. Requests from other origins are refused.
	// Requests without an Origin header (the CLI, SDKs) are not affected.
	AllowedOrigins []string
	// MaxBodyBytes caps request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

type handler struct {
	codec        http.Handler
	tokenHash    *[sha256.Size]byte
	verify       func(context.Context, string) error
	authRequired bool
	namespaces   map[string]bool
	origins      map[string]bool
	maxBody      int64
}

// NewHTTPHandler returns a codec server: POST …/encode and POST …/decode
// (any path prefix, as the protocol asks) take and return
// {"payloads":[…]} in protobuf JSON, encrypting with or decrypting by k.
// Every request must authenticate (see HandlerOptions.Token), name an
// allowed namespace when AllowedNamespaces is set, and come from an allowed
// origin when it comes from a browser; CORS preflights from allowed origins
// are answered without authentication, as browsers send them without
// credentials.
//
// Answers: 200; 400 for a body that is not payloads or that does not
// decode (unknown key ID, altered ciphertext); 401 without a valid token;
// 403 for a namespace or origin not allowed (or, unauthenticated, a peer
// not on loopback); 404 for another path; 405 for
// another method; 413 over the body cap; 415 for a body that is not JSON.
// The handler is safe for concurrent use.
func NewHTTPHandler(k *Keyring, opts HandlerOptions) (http.Handler, error) {
	if k == nil || k.ActiveKeyID() == "" {
		return nil, errors.New("payloadcodec: codec server needs a keyring with an active key")
	}
	h := &handler{
		codec:        converter.NewPayloadCodecHTTPHandler(NewCodec(k)),
		verify:       opts.VerifyToken,
		authRequired: opts.Token != "" || opts.VerifyToken != nil,
		namespaces:   map[string]bool{},
		origins:      map[string]bool{},
		maxBody:      opts.MaxBodyBytes,
	}
	if opts.Token != "" {
		if len(opts.Token) < MinTokenLen || strings.ContainsFunc(opts.Token, isSpaceOrControl) {
			return nil, fmt.Errorf("payloadcodec: the codec server token must be at least %d characters, without spaces", MinTokenLen)
		}
		sum := sha256.Sum256([]byte(opts.Token))
		h.tokenHash = &sum
	}
	if !h.authRequired && !opts.AllowUnauthenticated {
		return nil, errors.New("payloadcodec: the codec server needs a Token (or VerifyToken); set AllowUnauthenticated only for a local development server")
	}
	for _, ns := range opts.AllowedNamespaces {
		if ns == "" {
			return nil, errors.New("payloadcodec: empty namespace in AllowedNamespaces")
		}
		h.namespaces[ns] = true
	}
	for _, o := range opts.AllowedOrigins {
		norm, err := normalizeOrigin(o)
		if err != nil {
			return nil, err
		}
		h.origins[norm] = true
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Answers hold decrypted user data, and differ by Origin.
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin != "" {
		if !h.origins[strings.ToLower(origin)] {
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		hd.Set("Access-Control-Allow-Origin", origin)
		hd.Set("Access-Control-Allow-Credentials", "true")
	}
	if !strings.HasSuffix(r.URL.Path, "/encode") && !strings.HasSuffix(r.URL.Path, "/decode") {
		http.NotFound(w, r)
		return
	}
	if origin != "" && r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.preflight(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	if !h.authRequired && !fromLoopback(r) {
		// Unauthenticated serving is for a developer's machine only.
		http.Error(w, "this codec server serves only its own host", http.StatusForbidden)
		return
	}
	if h.authRequired && !h.authenticated(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="userhooks codec server"`)
		http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
		return
	}
	if len(h.namespaces) > 0 {
		ns := r.Header.Get(HeaderNamespace)
		if ns == "" {
			// temporal CLI v1.5 sends it empty unless -n/--namespace is given.
			http.Error(w, "the "+HeaderNamespace+" header is required (temporal CLI: pass --namespace)", http.StatusForbidden)
			return
		}
		if !h.namespaces[ns] {
			http.Error(w, "namespace not served by this codec server", http.StatusForbidden)
			return
		}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			http.Error(w, "the body must be application/json", http.StatusUnsupportedMediaType)
			return
		}
	}
	if r.ContentLength > h.maxBody {
		http.Error(w, "body larger than "+strconv.FormatInt(h.maxBody, 10)+" bytes", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "body larger than "+strconv.FormatInt(h.maxBody, 10)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	// The SDK's handler speaks the protocol: parse, run the codec, answer.
	r2 := *r
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	h.codec.ServeHTTP(w, &r2)
}

// preflight answers a CORS preflight from an allowed origin.
func (h *handler) preflight(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Add("Vary", "Access-Control-Request-Method")
	hd.Add("Vary", "Access-Control-Request-Headers")
	hd.Set("Access-Control-Allow-Methods", "POST")
	hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, "+HeaderNamespace)
	hd.Set("Access-Control-Max-Age", "600")
	// A Web UI served from a public address may call a codec server on a
	// private one (Chrome's Private Network Access).
	if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		hd.Set("Access-Control-Allow-Private-Network", "true")
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) authenticated(r *http.Request) bool {
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return false
	}
	if h.tokenHash != nil {
		sum := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(sum[:], h.tokenHash[:]) == 1 {
			return true
		}
	}
	return h.verify != nil && h.verify(r.Context(), token) == nil
}

// fromLoopback reports whether the peer's address is a loopback one.
func fromLoopback(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive (RFC 9110).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// normalizeOrigin checks that o is an origin, scheme://host[:port], and
// returns it in lower case, as browsers send it.
func normalizeOrigin(o string) (string, error) {
	bad := fmt.Errorf("payloadcodec: allowed origin %q is not an origin such as http://localhost:8233", o)
	if o == "*" || o == "null" {
		return "", fmt.Errorf("payloadcodec: allowed origin %q: name each origin (credentials are never allowed for %q)", o, o)
	}
	u, err := url.Parse(strings.TrimSuffix(o, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", bad
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }
