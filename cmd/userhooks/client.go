package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/userhooks/userhooks/apikey"
)

// Where the CLI finds the API and its key.
const (
	envAPIURL     = "USERHOOKS_API_URL"
	envAPIKey     = "USERHOOKS_API_KEY"
	envAPIKeyFile = "USERHOOKS_API_KEY_FILE"
	// defaultAPIURL is where `worker dev` serves the API.
	defaultAPIURL = "http://127.0.0.1:8000"
	// defaultAPIKeyFile is where `worker dev` writes its API key.
	defaultAPIKeyFile = ".userhooks/api-key"
)

// requestTimeout bounds one API call. The API's own write timeout is a
// minute; a little more lets its answer arrive.
const requestTimeout = 75 * time.Second

// maxAnswerBytes bounds what the CLI reads of one answer: a page of 100
// deliveries or subscriptions is far smaller.
const maxAnswerBytes = 16 << 20

// connFlags are the flags every command that calls the API takes. The key
// itself has no flag: command lines are visible to other users of the
// machine.
type connFlags struct {
	apiURL  string
	keyFile string
	fs      *flag.FlagSet
}

func (c *connFlags) register(fs *flag.FlagSet) {
	c.fs = fs
	fs.StringVar(&c.apiURL, "api-url", envOr(envAPIURL, defaultAPIURL), "base URL of the userhooks API (env "+envAPIURL+")")
	fs.StringVar(&c.keyFile, "api-key-file", os.Getenv(envAPIKeyFile),
		"file holding the API key; given here it wins over "+envAPIKey+", which wins over "+envAPIKeyFile+" and the default "+defaultAPIKeyFile)
}

// keyFileFlagGiven reports whether --api-key-file is on the command line.
func (c *connFlags) keyFileFlagGiven() bool {
	given := false
	if c.fs != nil {
		c.fs.Visit(func(f *flag.Flag) { given = given || f.Name == "api-key-file" })
	}
	return given
}

// checkURL reports a malformed --api-url as a usage error, before anything
// else is read.
func (c *connFlags) checkURL() (*url.URL, error) {
	u, err := url.Parse(c.apiURL)
	switch {
	case err != nil:
		return nil, usageError{fmt.Sprintf("--api-url %q is not a URL", c.apiURL)}
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, usageError{fmt.Sprintf("--api-url must start with http:// or https://, got %q", c.apiURL)}
	case u.Host == "":
		return nil, usageError{fmt.Sprintf("--api-url %q names no host", c.apiURL)}
	case u.User != nil:
		// Credentials in a URL end up in shell history and process lists.
		return nil, usageError{"--api-url must not hold credentials: put the API key in " + envAPIKey + " or --api-key-file"}
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, usageError{"--api-url takes no query or fragment: give the base URL, e.g. " + defaultAPIURL}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// client checks the flags and reads the key, and returns a client of the
// API. It sends nothing.
func (c *connFlags) client() (*apiClient, error) {
	base, err := c.checkURL()
	if err != nil {
		return nil, err
	}
	key, source, err := c.readKey()
	if err != nil {
		return nil, err
	}
	return &apiClient{
		base: base, key: key, keySource: source,
		hc: &http.Client{
			Timeout: requestTimeout,
			// The API never redirects; following one would send the key to
			// whatever the Location names (Go drops it only across hosts).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// errNoKey says where an API key goes; it is returned when none is found.
var errNoKey = errors.New("no API key: set " + envAPIKey + ", or put the key in " + defaultAPIKeyFile +
	" (`worker dev` writes one there) or in the file named by --api-key-file / " + envAPIKeyFile +
	"; an operator creates keys with `userhooks apikeys create --account ACCOUNT`")

// readKey returns the API key and says where it came from: the file named
// by --api-key-file on the command line, else USERHOOKS_API_KEY, else the
// file named by USERHOOKS_API_KEY_FILE or the default file. What the command
// line says wins, so that a key exported in the shell cannot silently stand
// in for the one asked for. Errors never hold the key, nor any part of it.
func (c *connFlags) readKey() (key, source string, err error) {
	if k := os.Getenv(envAPIKey); k != "" && !c.keyFileFlagGiven() {
		return checkKey(k, envAPIKey)
	}
	file, explicit := c.keyFile, c.keyFile != ""
	if !explicit {
		file = defaultAPIKeyFile
	}
	b, err := os.ReadFile(file)
	switch {
	case errors.Is(err, os.ErrNotExist) && !explicit:
		return "", "", errNoKey
	case err != nil:
		return "", "", fmt.Errorf("read the API key file (--api-key-file / %s): %w", envAPIKeyFile, err)
	}
	return checkKey(string(b), "the file "+file)
}

// checkKey refuses a key that cannot be one, so that a wrong file (a
// whsec_ secret, say) is reported as such instead of as a refusal by the
// API. The message names the source, never the content.
func checkKey(k, source string) (string, string, error) {
	k = strings.TrimSpace(k)
	if k == "" {
		return "", "", fmt.Errorf("the API key in %s is empty", source)
	}
	printable := !strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r > '~' })
	if !strings.HasPrefix(k, apikey.Prefix) || !printable {
		return "", "", fmt.Errorf("%s does not hold an API key (one line starting with %s)", source, apikey.Prefix)
	}
	return k, source, nil
}

// apiClient calls the userhooks HTTP API with one API key. Its errors name
// the API's host and the operation, never the key.
type apiClient struct {
	base      *url.URL
	key       string
	keySource string
	hc        *http.Client
	// problemsAsJSON is set for a command run with --json: its refusals
	// by the API are printed as their problem documents too (see cli).
	problemsAsJSON bool
}

// apiError is an answer of the API other than 2xx: its problem document
// (RFC 9457) when it sent one.
type apiError struct {
	Method, Path string
	Status       int
	Title        string
	Detail       string
	Errors       []string
	// hint is added by the client: what to do about it.
	hint string
	// problem is the answer's body when it is a problem document (a JSON
	// object), as it came; nil otherwise.
	problem []byte
	// printProblem asks cli to print problem to stdout: the command was
	// run with --json, for scripts.
	printProblem bool
}

func (e *apiError) Error() string {
	var b strings.Builder
	title := e.Title
	if title == "" {
		title = http.StatusText(e.Status)
	}
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.Path, e.Status, title)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if e.hint != "" {
		b.WriteString(" (" + e.hint + ")")
	}
	for _, d := range e.Errors {
		b.WriteString("\n  - " + d)
	}
	return b.String()
}

// badInput reports whether the API refused the request's content: nothing
// was changed and sending it again would not help.
func (e *apiError) badInput() bool {
	switch e.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// problemDoc is the part of a problem document the CLI shows.
type problemDoc struct {
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Detail string `json:"detail"`
	} `json:"errors"`
}

// jsonBody is a request body already encoded, with its media type.
type jsonBody struct {
	contentType string
	data        []byte
}

// newJSONBody encodes v as an application/json body.
func newJSONBody(v any) (*jsonBody, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return &jsonBody{contentType: "application/json", data: b}, nil
}

// call sends one request and returns the answer's body when the status is
// 2xx (nil for 204). With out, the body is decoded into it too. Anything
// else is an error: *apiError for an answer of the API, an error naming the
// host for one that never came.
func (c *apiClient) call(ctx context.Context, method, path string, q url.Values, body *jsonBody, out any) ([]byte, error) {
	u := *c.base
	u.Path += path
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body.data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", "userhooks-cli")
	if body != nil {
		req.Header.Set("Content-Type", body.contentType)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, c.unreachable(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer of %s: %w", method, path, c.base.Host, cause(err))
	}
	if len(raw) > maxAnswerBytes {
		return nil, fmt.Errorf("%s %s: the answer of %s is larger than %d bytes", method, path, c.base.Host, maxAnswerBytes)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, c.refusal(method, path, res, raw)
	}
	if res.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	if !isJSON(res.Header.Get("Content-Type"), "application/json") || !json.Valid(raw) {
		return nil, fmt.Errorf("%s %s: %s answered %d without a JSON body: is %s the userhooks API? (--api-url / %s)",
			method, path, c.base.Host, res.StatusCode, c.base.Redacted(), envAPIURL)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: the answer of %s is not what the CLI expects (a newer API?): %w", method, path, c.base.Host, err)
		}
	}
	return raw, nil
}

// refusal turns a non-2xx answer into an *apiError.
func (c *apiClient) refusal(method, path string, res *http.Response, raw []byte) error {
	e := &apiError{Method: method, Path: path, Status: res.StatusCode, printProblem: c.problemsAsJSON}
	var p problemDoc
	if isJSON(res.Header.Get("Content-Type"), "application/problem+json", "application/json") && json.Unmarshal(raw, &p) == nil {
		e.problem = raw
		e.Title, e.Detail = oneLine(p.Title, 200), oneLine(p.Detail, 1000)
		for _, fe := range p.Errors {
			e.Errors = append(e.Errors, oneLine(fe.Detail, 1000))
		}
	} else {
		e.hint = fmt.Sprintf("from %s, not a problem document: is it the userhooks API? check --api-url / %s", c.base.Host, envAPIURL)
	}
	switch {
	case res.StatusCode == http.StatusUnauthorized:
		e.hint = "the API key from " + c.keySource + " was refused: it may be revoked, or belong to another installation"
	case res.StatusCode >= 300 && res.StatusCode < 400:
		e.hint = fmt.Sprintf("%s redirects; give the API's own address in --api-url / %s", c.base.Host, envAPIURL)
	}
	return e
}

// unreachable reports a request that got no answer. url.Error's text holds
// the whole URL; the message names the host instead.
func (c *apiClient) unreachable(err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted before %s answered", c.base.Host)
	}
	return fmt.Errorf("cannot reach the userhooks API at %s (is it running? `go run ./worker dev` serves it on %s; set --api-url / %s): %w",
		c.base.Host, strings.TrimPrefix(defaultAPIURL, "http://"), envAPIURL, cause(err))
}

// cause strips *url.Error, whose text repeats the URL.
func cause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return errors.New("no answer in time")
		}
		return ue.Err
	}
	return err
}

// isJSON reports whether a Content-Type is one of the media types.
func isJSON(contentType string, mediaTypes ...string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	for _, m := range mediaTypes {
		if mt == m {
			return true
		}
	}
	return false
}

// pathEscape escapes one path segment.
func pathEscape(s string) string { return url.PathEscape(s) }
