// Package stores opens the subscription store that one setting names, so
// that every command (the worker, the CLI) takes the same -store value:
//
//	/var/lib/userhooks/subs.db                 SQLite, a file path (relative too)
//	sqlite:data/subs.db, sqlite:/abs/subs.db   SQLite, a sqlite: URI
//	sqlite:///abs/subs.db, file:/abs/subs.db   (file: too; %-escapes decoded)
//	postgres://user:password@host:5432/userhooks?sslmode=verify-full
//	postgresql://user:password@host/userhooks  PostgreSQL (subscription.OpenPostgres)
package stores

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/userhooks/userhooks/subscription"
)

// Supported names what Open accepts, for flag help and error messages.
const Supported = "a SQLite file path, sqlite:PATH, file:PATH, or a postgres:// or postgresql:// URL"

// scheme matches a URI scheme (RFC 3986) of two characters or more, so that
// a Windows drive letter is not taken for one.
var scheme = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]+):`)

// keywordValue matches the start of a libpq keyword/value string
// ("host=db dbname=userhooks"), which Open refuses rather than take for a
// file name.
var keywordValue = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)

// Open opens the store that dsn names: SQLite (subscription.OpenSQLite) for
// a file path or a sqlite: or file: URI, PostgreSQL
// (subscription.OpenPostgres) for a postgres:// or postgresql:// URL. Any
// other scheme, an empty dsn or a keyword/value string is refused with an
// error that says what is accepted, before anything is created. Errors never
// contain a PostgreSQL password. ctx bounds connecting and migrating.
func Open(ctx context.Context, dsn string) (subscription.Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open subscription store: %w", err)
	}
	kind, target, err := parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("open subscription store: %w", err)
	}
	if kind == kindPostgres {
		return subscription.OpenPostgres(ctx, target)
	}
	return subscription.OpenSQLite(target)
}

type kind int

const (
	kindSQLite kind = iota
	kindPostgres
)

// parse tells which store dsn names, and returns the SQLite file path or
// the PostgreSQL DSN. Its errors quote no more of dsn than the scheme.
func parse(dsn string) (kind, string, error) {
	if strings.TrimSpace(dsn) == "" {
		return 0, "", fmt.Errorf("no store given: want %s", Supported)
	}
	m := scheme.FindStringSubmatch(dsn)
	if m == nil {
		if keywordValue.MatchString(dsn) {
			return 0, "", errors.New("the store looks like a PostgreSQL keyword/value string; write it as a URL, postgres://user:password@host:port/database?sslmode=...")
		}
		return kindSQLite, dsn, nil
	}
	name := strings.ToLower(m[1])
	switch name {
	case "postgres", "postgresql":
		if !strings.HasPrefix(dsn[len(name)+1:], "//") {
			return 0, "", fmt.Errorf("a PostgreSQL store is a URL: want %s://user:password@host:port/database", name)
		}
		// pgx recognises the scheme in lower case only.
		return kindPostgres, name + dsn[len(name):], nil
	case "sqlite", "file":
		path, err := sqlitePath(dsn)
		if err != nil {
			return 0, "", fmt.Errorf("%s: URI: %w", name, err)
		}
		return kindSQLite, path, nil
	}
	if len(name) > 24 {
		name = name[:24] + "…"
	}
	return 0, "", fmt.Errorf("unsupported store scheme %q: want %s (for a file whose name holds a colon, write ./NAME)", name, Supported)
}

// sqlitePath returns the file path of a sqlite: or file: URI:
// sqlite:relative.db, sqlite:/abs.db, sqlite:///abs.db or
// sqlite://localhost/abs.db, percent-escapes decoded.
func sqlitePath(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", errors.New("cannot be parsed; write sqlite:PATH or sqlite:///ABSOLUTE/PATH, with % written %25")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", errors.New("takes no parameters (the store sets its own): remove what follows ? or #")
	}
	if u.User != nil || (u.Host != "" && u.Host != "localhost") {
		return "", errors.New("names a host; write sqlite:relative/path.db or sqlite:///absolute/path.db")
	}
	path := u.Path
	if u.Opaque != "" {
		if path, err = url.PathUnescape(u.Opaque); err != nil {
			return "", errors.New("holds an invalid %-escape; write % as %25")
		}
	}
	if path == "" {
		return "", errors.New("names no file; write sqlite:PATH")
	}
	return path, nil
}

// SQLitePath returns the file that dsn names when Open would open it as a
// SQLite store, and false otherwise (a PostgreSQL URL, or a dsn that Open
// refuses). Commands use it to create the file's directory before Open.
func SQLitePath(dsn string) (string, bool) {
	kind, path, err := parse(dsn)
	if err != nil || kind != kindSQLite {
		return "", false
	}
	return path, true
}

// Redacted returns dsn with any PostgreSQL password replaced by "xxxxx", for
// logs and messages that name the store. A DSN that cannot be parsed yields
// only its scheme.
func Redacted(dsn string) string {
	kind, target, err := parse(dsn)
	if err != nil {
		if m := scheme.FindStringSubmatch(dsn); m != nil && !keywordValue.MatchString(dsn) {
			return strings.ToLower(m[1]) + ":…"
		}
		return "(invalid store)"
	}
	if kind == kindSQLite {
		return target
	}
	u, err := url.Parse(target)
	if err != nil {
		name, _, _ := strings.Cut(target, ":")
		return name + "://…"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
