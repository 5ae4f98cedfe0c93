package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/userhooks/userhooks/api"
	"github.com/userhooks/userhooks/apikey"
	"github.com/userhooks/userhooks/subscription"
)

// harness is an API server over a real SQLite subscription store and a real
// API key store (one file, as in production), with fakes for the
// Temporal-backed parts. Every answer a test gets through it is checked
// against the OpenAPI document.
type harness struct {
	t       testing.TB
	url     string
	handler http.Handler
	subs    *subscription.SQLiteStore
	keys    *apikey.SQLStore
	pub     *fakePublisher
	dels    *fakeDeliveries
	clock   *clock
	logs    *observer.ObservedLogs
	// checkedURLs records what the CheckURL hook was asked.
	checkedMu   sync.Mutex
	checkedURLs []string

	// acme and globex are API keys of two accounts.
	acme, globex string
}

// t0 is the harness clock's start.
var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// blockedURL is refused by the harness's CheckURL hook.
const blockedURL = "https://blocked.example/hooks"

func newHarness(t testing.TB, configure ...func(*api.Config)) *harness {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "userhooks.db")
	subs, err := subscription.OpenSQLite(path)
	if err != nil {
		t.Fatalf("open subscription store: %v", err)
	}
	t.Cleanup(func() { subs.Close() })
	keys, err := apikey.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("open API key store: %v", err)
	}
	t.Cleanup(func() { keys.Close() })

	core, logs := observer.New(zap.DebugLevel)
	h := &harness{
		t: t, subs: subs, keys: keys, logs: logs,
		pub:   &fakePublisher{runs: map[string]string{}},
		dels:  newFakeDeliveries(),
		clock: &clock{now: t0},
	}
	cfg := api.Config{
		Subscriptions: subs,
		Keys:          keys,
		Publisher:     h.pub,
		Deliveries:    h.dels,
		Logger:        zap.New(core),
		Now:           h.clock.Now,
		CheckURL: func(_ context.Context, rawURL string) error {
			h.checkedMu.Lock()
			defer h.checkedMu.Unlock()
			h.checkedURLs = append(h.checkedURLs, rawURL)
			if rawURL == blockedURL {
				return fmt.Errorf("blocked.example resolves to a private address")
			}
			return nil
		},
	}
	for _, c := range configure {
		c(&cfg)
	}
	handler, err := api.New(cfg)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	h.url, h.handler = srv.URL, handler
	_, h.acme, err = keys.Create(ctx, "acme", "test")
	if err != nil {
		t.Fatal(err)
	}
	_, h.globex, err = keys.Create(ctx, "globex", "test")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checked returns, and forgets, the URLs the CheckURL hook was asked.
func (h *harness) checked() []string {
	h.checkedMu.Lock()
	defer h.checkedMu.Unlock()
	urls := h.checkedURLs
	h.checkedURLs = nil
	return urls
}

// response is an answer, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("answer is not a JSON object: %v\n%s", err, r.body)
	}
	return v
}

// decode decodes the body into v.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode answer: %v\n%s", err, r.body)
	}
}

// want fails the test unless the status is code.
func (r response) want(t testing.TB, code int) response {
	t.Helper()
	if r.status != code {
		t.Fatalf("status = %d, want %d; body:\n%s", r.status, code, r.body)
	}
	return r
}

// problemDetails returns the detail and errors[].detail of a problem
// answer, joined, for assertions on wording.
func (r response) problemText(t testing.TB) string {
	t.Helper()
	var p struct {
		Detail string `json:"detail"`
		Errors []struct {
			Detail string `json:"detail"`
		} `json:"errors"`
	}
	r.decode(t, &p)
	parts := []string{p.Detail}
	for _, e := range p.Errors {
		parts = append(parts, e.Detail)
	}
	return strings.Join(parts, " | ")
}

// req describes a request; the zero value of each field is the common case.
type req struct {
	method, path string
	// key is the bearer token; "" sends none.
	key  string
	body string
	// contentType defaults to application/json when there is a body;
	// "none" sends none.
	contentType string
	header      http.Header
}

// do sends a request and checks the answer against the OpenAPI document.
func (h *harness) do(r req) response {
	h.t.Helper()
	return doRequest(h.t, h.url, r)
}

func doRequest(t testing.TB, baseURL string, r req) response {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequestWithContext(t.Context(), r.method, baseURL+r.path, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if r.key != "" {
		hr.Header.Set("Authorization", "Bearer "+r.key)
	}
	switch {
	case r.contentType == "none":
	case r.contentType != "":
		hr.Header.Set("Content-Type", r.contentType)
	case r.body != "":
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		hr.Header[k] = v
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	resp := response{status: res.StatusCode, header: res.Header, body: b}
	openAPI(t).check(t, r.method, r.path, resp)
	return resp
}

// Shorthands.
func (h *harness) get(key, path string) response {
	h.t.Helper()
	return h.do(req{method: http.MethodGet, path: path, key: key})
}

func (h *harness) post(key, path, body string) response {
	h.t.Helper()
	return h.do(req{method: http.MethodPost, path: path, key: key, body: body})
}

func (h *harness) patch(key, path, body string) response {
	h.t.Helper()
	return h.do(req{method: http.MethodPatch, path: path, key: key, body: body, contentType: "application/merge-patch+json"})
}

// createSubscription creates a subscription through the API and returns its
// ID and secret.
func (h *harness) createSubscription(key, body string) (id, secret string) {
	h.t.Helper()
	var v struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	h.post(key, "/v1/subscriptions", body).want(h.t, http.StatusCreated).decode(h.t, &v)
	return v.ID, v.Secret
}

// stored returns a subscription straight from the store.
func (h *harness) stored(id string) subscription.Subscription {
	h.t.Helper()
	s, err := h.subs.Get(h.t.Context(), id)
	if err != nil {
		h.t.Fatalf("store Get %s: %v", id, err)
	}
	return s
}

// storedCount returns how many subscriptions an account has in the store.
func (h *harness) storedCount(account string) int {
	h.t.Helper()
	subs, err := h.subs.List(h.t.Context(), account, "", subscription.MaxPageSize)
	if err != nil {
		h.t.Fatal(err)
	}
	return len(subs)
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// openAPIDoc checks answers against the OpenAPI document.
type openAPIDoc struct {
	raw      map[string]any
	compiler *jsonschema.Compiler
	paths    []docPath

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema
}

type docPath struct {
	template string
	re       *regexp.Regexp
}

const docURL = "mem:///openapi.json"

var (
	docOnce sync.Once
	doc     *openAPIDoc
	docErr  error
)

// openAPI loads the document (once per test binary).
func openAPI(t testing.TB) *openAPIDoc {
	t.Helper()
	docOnce.Do(func() { doc, docErr = loadOpenAPI(api.OpenAPI()) })
	if docErr != nil {
		t.Fatalf("load OpenAPI document: %v", docErr)
	}
	return doc
}

func loadOpenAPI(b []byte) (*openAPIDoc, error) {
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(docURL, raw); err != nil {
		return nil, err
	}
	d := &openAPIDoc{raw: raw.(map[string]any), compiler: c, schemas: map[string]*jsonschema.Schema{}}
	paths, _ := d.raw["paths"].(map[string]any)
	for tmpl := range paths {
		expr := regexp.MustCompile(`\\\{[a-z_]+\\\}`).ReplaceAllString(regexp.QuoteMeta(tmpl), `[^/]+`)
		d.paths = append(d.paths, docPath{template: tmpl, re: regexp.MustCompile("^" + expr + "$")})
	}
	return d, nil
}

// schema compiles (once) the schema at a JSON pointer of the document.
func (d *openAPIDoc) schema(pointer string) (*jsonschema.Schema, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.schemas[pointer]; ok {
		return s, nil
	}
	s, err := d.compiler.Compile(docURL + "#" + pointer)
	if err != nil {
		return nil, err
	}
	d.schemas[pointer] = s
	return s, nil
}

// escape escapes a JSON pointer token.
func escape(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

// lookup follows a JSON pointer in the raw document.
func (d *openAPIDoc) lookup(pointer string) (any, bool) {
	var cur any = d.raw
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// operation finds the documented operation of a request, if any.
func (d *openAPIDoc) operation(method, path string) (pointer string, ok bool) {
	path, _, _ = strings.Cut(path, "?")
	for _, p := range d.paths {
		if !p.re.MatchString(path) {
			continue
		}
		pointer = "/paths/" + escape(p.template) + "/" + strings.ToLower(method)
		if _, ok := d.lookup(pointer); ok {
			return pointer, true
		}
	}
	return "", false
}

// check fails t unless the answer is one the document describes for the
// request: a documented status, a documented media type, a body that
// conforms to its schema. Requests that match no documented operation (the
// 404 and 405 of unknown routes) are checked to be problem documents only.
func (d *openAPIDoc) check(t testing.TB, method, path string, r response) {
	t.Helper()
	op, ok := d.operation(method, path)
	if !ok {
		if r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s matches no documented operation, yet answered %d", method, path, r.status)
		}
		d.validate(t, "/components/schemas/Problem", r)
		return
	}
	respPointer := op + "/responses/" + strconv.Itoa(r.status)
	resp, ok := d.lookup(respPointer)
	if !ok {
		t.Errorf("%s %s answered %d, which %s does not document; body:\n%s", method, path, r.status, op, r.body)
		return
	}
	if ref, ok := resp.(map[string]any)["$ref"].(string); ok {
		respPointer = strings.TrimPrefix(ref, "#")
		resp, _ = d.lookup(respPointer)
	}
	content, _ := resp.(map[string]any)["content"].(map[string]any)
	if len(content) == 0 {
		if len(r.body) != 0 {
			t.Errorf("%s %s answered %d with a body, documented as empty", method, path, r.status)
		}
		return
	}
	mt := strings.TrimSpace(strings.Split(r.header.Get("Content-Type"), ";")[0])
	if _, ok := content[mt]; !ok {
		t.Errorf("%s %s answered %d as %q, documented as %v", method, path, r.status, mt, slices.Sorted(maps.Keys(content)))
		return
	}
	d.validate(t, respPointer+"/content/"+escape(mt)+"/schema", r)
}

func (d *openAPIDoc) validate(t testing.TB, schemaPointer string, r response) {
	t.Helper()
	sch, err := d.schema(schemaPointer)
	if err != nil {
		t.Fatalf("compile schema %s: %v", schemaPointer, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.body))
	if err != nil {
		t.Errorf("answer %d is not JSON: %v\n%s", r.status, err, r.body)
		return
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("answer %d does not conform to %s: %#v\nbody:\n%s", r.status, schemaPointer, err, r.body)
	}
}
