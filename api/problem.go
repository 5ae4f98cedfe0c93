package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"
)

// problem is an RFC 9457 problem document, and the error that handlers
// return to answer with one.
type problem struct {
	// Type is always "about:blank": the status code and Title say what kind
	// of problem it is, Detail and Errors say what exactly.
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Errors lists each problem of an invalid request.
	Errors []fieldError `json:"errors,omitempty"`

	header http.Header
}

// fieldError is one problem with a request. Pointer (RFC 6901, into the
// JSON body) or Parameter (a query parameter) says where, when known.
type fieldError struct {
	Detail    string `json:"detail"`
	Pointer   string `json:"pointer,omitempty"`
	Parameter string `json:"parameter,omitempty"`
}

func (p *problem) Error() string {
	msg := fmt.Sprintf("%d %s", p.Status, http.StatusText(p.Status))
	if p.Detail != "" {
		msg += ": " + p.Detail
	}
	return msg
}

// badRequest is a 400 for a request whose form is wrong: not JSON, unknown
// fields, wrong types, bad query parameters.
func badRequest(detail string, errs ...fieldError) *problem {
	return &problem{Status: http.StatusBadRequest, Detail: detail, Errors: errs}
}

// unprocessable is a 422 for a well-formed request whose values are invalid.
func unprocessable(detail string, problems ...string) *problem {
	p := &problem{Status: http.StatusUnprocessableEntity, Detail: detail}
	for _, d := range problems {
		p.Errors = append(p.Errors, fieldError{Detail: d})
	}
	return p
}

// notFound is the 404 for a resource that does not exist or belongs to
// another account. The two cases must give identical answers, so the
// detail never depends on which it is, or on the ID asked for.
func notFound(what string) *problem {
	return &problem{Status: http.StatusNotFound, Detail: what + " not found"}
}

// writeProblem writes p as application/problem+json.
func writeProblem(w http.ResponseWriter, p *problem) {
	p.Type = "about:blank"
	p.Title = http.StatusText(p.Status)
	for k, v := range p.header {
		w.Header()[k] = v
	}
	body, err := json.Marshal(p)
	if err != nil {
		// Strings and ints only: cannot happen.
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500}`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	w.Write(append(body, '\n'))
}

// writeJSON writes v as application/json with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
	return nil
}

// maxBodyBytes caps every request body but the event's (event.MaxBodyBytes,
// the same size): a subscription with the longest URL, description and
// schedule is far smaller.
const maxBodyBytes = 64 << 10

// Media types accepted in request bodies.
const (
	mediaJSON       = "application/json"
	mediaMergePatch = "application/merge-patch+json"
)

// readBody reads a request body of at most limit bytes. An empty body is
// returned as nil when optional, refused otherwise; a non-empty one must be
// of one of the media types (charset, if given, utf-8).
func readBody(w http.ResponseWriter, r *http.Request, limit int64, optional bool, mediaTypes ...string) ([]byte, error) {
	tooLarge := &problem{Status: http.StatusRequestEntityTooLarge,
		Detail: fmt.Sprintf("the body is larger than %d bytes, the most this operation accepts", limit)}
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return nil, tooLarge
	}
	if err != nil {
		return nil, badRequest("the body could not be read")
	}
	if len(body) == 0 {
		if optional {
			return nil, nil
		}
		return nil, badRequest("a JSON body is required")
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	charset, hasCharset := params["charset"]
	if err != nil || !slices.Contains(mediaTypes, mt) || (hasCharset && !strings.EqualFold(charset, "utf-8")) {
		p := &problem{Status: http.StatusUnsupportedMediaType,
			Detail: fmt.Sprintf("Content-Type must be %s", strings.Join(mediaTypes, " or "))}
		if r.Method == http.MethodPatch {
			p.header = http.Header{"Accept-Patch": {strings.Join(mediaTypes, ", ")}}
		}
		return nil, p
	}
	return body, nil
}

// decodeStrict decodes a JSON object into v (a pointer to a struct), refusing
// anything but exactly one object whose fields v knows, of the right types.
func decodeStrict(body []byte, v any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if !json.Valid(body) {
			return badRequest("the body is not valid JSON")
		}
		return badRequest("the body must be a JSON object")
	}
	if !utf8.Valid(body) {
		return badRequest("the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("the body has data after the JSON object")
	}
	return nil
}

// decodeError turns an encoding/json error into a 400 that says what is
// wrong and where.
func decodeError(err error) *problem {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntaxErr):
		return badRequest(fmt.Sprintf("the body is not valid JSON: %s (at byte %d)", truncate(strings.TrimPrefix(syntaxErr.Error(), "json: ")), syntaxErr.Offset))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the body is not valid JSON: it ends early")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		fe := fieldError{Detail: fmt.Sprintf("%s must be %s, not %s", orBody(field), jsonKind(typeErr.Type), typeErr.Value)}
		if field != "" {
			fe.Pointer = "/" + strings.ReplaceAll(field, ".", "/")
		}
		return badRequest("the body has a field of the wrong type", fe)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return badRequest("the body has a field this operation does not know",
			fieldError{Detail: "unknown field " + truncate(name)})
	default:
		// A field's own decoder refused its value (a malformed duration or
		// time, say); its message names the value, not the field.
		return badRequest("the body has an invalid value", fieldError{Detail: truncate(strings.TrimPrefix(err.Error(), "json: "))})
	}
}

func orBody(field string) string {
	if field == "" {
		return "the body"
	}
	return field
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another type"
}

// query reads a request's query parameters, refusing unknown and repeated
// ones: a misspelt filter silently ignored would answer a different
// question than the one asked.
type query struct {
	values url.Values
	errs   []fieldError
}

func parseQuery(r *http.Request, allowed ...string) *query {
	q := &query{}
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		q.errs = append(q.errs, fieldError{Detail: "the query string cannot be parsed"})
		return q
	}
	q.values = values
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		switch {
		case !slices.Contains(allowed, name):
			q.errs = append(q.errs, fieldError{Detail: fmt.Sprintf("unknown query parameter %s", quoteShort(name)), Parameter: name})
		case len(values[name]) > 1:
			q.errs = append(q.errs, fieldError{Detail: fmt.Sprintf("query parameter %s is given more than once", name), Parameter: name})
		}
	}
	return q
}

// get returns a parameter's value, "" when absent.
func (q *query) get(name string) string { return q.values.Get(name) }

// fail records a problem with a parameter.
func (q *query) fail(name, format string, args ...any) {
	q.errs = append(q.errs, fieldError{Detail: name + " " + fmt.Sprintf(format, args...), Parameter: name})
}

// err returns the 400 listing every problem, or nil.
func (q *query) err() error {
	if len(q.errs) == 0 {
		return nil
	}
	return badRequest("the query parameters are invalid", q.errs...)
}

// quoteShort quotes a caller's value for a message, cut short so that a
// huge value does not make a huge answer.
func quoteShort(s string) string {
	const limit = 64
	if len(s) <= limit {
		return fmt.Sprintf("%q", s)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…", s[:cut])
}

// truncate cuts a message that may quote a caller's value to a readable
// length.
func truncate(s string) string {
	const limit = 200
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
