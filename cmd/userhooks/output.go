package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeRaw prints an answer of the API as it came, indented.
func writeRaw(w io.Writer, raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return fmt.Errorf("print the answer: %w", err)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

// newTable returns a writer that aligns tab-separated columns; call Flush.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// row writes one table row. Every cell is made safe with cell.
func row(tw io.Writer, cells ...string) {
	for i, c := range cells {
		cells[i] = cell(c)
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// rowWide is row with a last column of up to 200 characters, for error
// messages, whose end often says what went wrong.
func rowWide(tw io.Writer, cells ...string) {
	last := oneLine(cells[len(cells)-1], 200)
	for i, c := range cells[:len(cells)-1] {
		cells[i] = cell(c)
	}
	if last == "" {
		last = "-"
	}
	cells[len(cells)-1] = last
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// cell is a table cell: one line, at most 80 characters, "-" when empty.
func cell(s string) string {
	if s = oneLine(s, 80); s == "" {
		return "-"
	}
	return s
}

// oneLine makes text from the API (or from a receiver, through it) safe to
// print in a terminal: control and formatting characters — newlines, tabs,
// escape sequences, bidirectional overrides — become spaces, and the text
// is cut to max characters.
func oneLine(s string, max int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max-1]) + "…"
}

// timeLayout is how times are shown: UTC, to the second, in a form that
// --since and --until accept back.
const timeLayout = "2006-01-02T15:04:05Z"

// fmtTime shows a time, "" for none.
func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

// orAll shows a list of event types, "(all)" when empty.
func orAll(types []string) string {
	if len(types) == 0 {
		return "(all)"
	}
	return strings.Join(types, ",")
}

// fields prints label/value lines, aligned.
func fields(w io.Writer, pairs ...string) error {
	tw := newTable(w)
	for i := 0; i+1 < len(pairs); i += 2 {
		v := oneLine(pairs[i+1], 2000)
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\n", pairs[i], v)
	}
	return tw.Flush()
}

// extraFields returns label/value pairs, for fields, of the members of the
// JSON object raw that are not in known, in name order: a string as it is,
// null as "-", another scalar or an array as compact JSON, and an object
// member by member as "name.member". It shows what an API newer than the
// CLI added; nil when raw is not an object.
func extraFields(raw []byte, known []string) []string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	var pairs []string
	for _, name := range slices.Sorted(maps.Keys(obj)) {
		if slices.Contains(known, name) {
			continue
		}
		var members map[string]json.RawMessage
		if json.Unmarshal(obj[name], &members) == nil && members != nil {
			for _, m := range slices.Sorted(maps.Keys(members)) {
				pairs = append(pairs, name+"."+m, jsonValue(members[m]))
			}
			continue
		}
		pairs = append(pairs, name, jsonValue(obj[name]))
	}
	return pairs
}

// jsonValue shows one JSON value on one line: a string without quotes,
// null as "" (which fields prints as "-"), anything else compacted.
func jsonValue(v json.RawMessage) string {
	var s *string
	if json.Unmarshal(v, &s) == nil {
		if s == nil {
			return ""
		}
		return *s
	}
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return string(v)
	}
	return b.String()
}

// shortDuration shows a duration as time.Duration does, without the zero
// units it ends with: 1h rather than 1h0m0s, 1m30s, 10s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
