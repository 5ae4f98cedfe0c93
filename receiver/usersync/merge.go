package usersync

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/userhooks/userhooks/event"
)

// version orders events: by timestamp (Unix milliseconds, the envelope's
// precision), then by event ID. UUIDv7 IDs sort by time, so the tie-break
// follows publication order for events stamped in the same millisecond; for
// other IDs it is arbitrary but the same on every receiver, which is what
// convergence needs.
type version struct {
	At int64  `json:"t"`
	ID string `json:"id"`
}

func versionOf(e event.Event) version { return version{At: e.Timestamp.UnixMilli(), ID: e.ID} }

func (v version) time() time.Time { return time.UnixMilli(v.At).UTC() }

// newerThan reports whether v sorts after o.
func (v version) newerThan(o version) bool {
	if v.At != o.At {
		return v.At > o.At
	}
	return v.ID > o.ID
}

// Field names in the versions map: those of event.User's JSON, with
// "attributes" for the attribute map as a whole and "attributes.<key>" for
// one attribute, as previous_attributes names them.
const (
	fieldAttributes = "attributes"
	attributePrefix = "attributes."
)

// profileFields are the user's fields other than attributes, each with how
// to copy it from an event's user.
var profileFields = []struct {
	name string
	copy func(dst *User, src event.User)
}{
	{"email", func(d *User, s event.User) { d.Email = s.Email }},
	{"username", func(d *User, s event.User) { d.Username = s.Username }},
	{"name", func(d *User, s event.User) { d.Name = s.Name }},
	{"status", func(d *User, s event.User) { d.Status = s.Status }},
	{"roles", func(d *User, s event.User) { d.Roles = nonEmpty(slices.Clone(s.Roles)) }},
	{"tags", func(d *User, s event.User) { d.Tags = nonEmpty(slices.Clone(s.Tags)) }},
}

// record is a mirrored user with the version of each field: the newest
// event that set it. Versions are what make the mirror converge whatever
// order events arrive in (see the package documentation).
type record struct {
	User
	versions map[string]version
}

// merge applies e to cur (nil: the mirror has no row for the user) and
// returns the new record and what happened. It does not modify cur. It is a
// pure function, so that every arrival order of the same events can be
// checked to end in the same record.
func merge(cur *record, e event.Event, mode DeleteMode) (*record, Action) {
	v := versionOf(e)
	u := e.Data.User
	if cur == nil {
		r := &record{User: User{AccountID: e.AccountID, ID: u.ID}, versions: map[string]version{}}
		r.LastEventAt, r.LastEventID = v.time(), v.ID
		if e.Type == event.TypeUserDeleted {
			// A tombstone, so that a create or update that arrives
			// late cannot bring the user back.
			r.Deleted = true
			return r, ActionDeleted
		}
		r.fill(u, nil, v)
		return r, ActionCreated
	}

	r := cur.clone()
	if v.newerThan(version{At: r.LastEventAt.UnixMilli(), ID: r.LastEventID}) {
		r.LastEventAt, r.LastEventID = v.time(), v.ID
	}
	switch {
	case e.Type == event.TypeUserDeleted && r.Deleted:
		return r, ActionIgnoredDeleted
	case e.Type == event.TypeUserDeleted:
		r.Deleted = true
		if mode == EraseOnDelete {
			r.erase()
		}
		return r, ActionDeleted
	case r.Deleted && mode == EraseOnDelete:
		return r, ActionIgnoredDeleted
	}
	var listed map[string]json.RawMessage // nil: every field (user.created)
	if e.Type == event.TypeUserUpdated {
		listed = e.Data.PreviousAttributes
	}
	if !r.fill(u, listed, v) {
		return r, ActionIgnoredStale
	}
	return r, ActionUpdated
}

// fill sets fields of r from u as of version v and reports whether any
// changed. listed nil means every field (user.created); otherwise the fields
// that previous_attributes names, plus any field the mirror has never had a
// value for: u is the user's whole state after the change, so that is a
// value as of v too (this is what makes an update that arrives before its
// create an upsert). Each field is set only if v is newer than the version
// that set it last.
func (r *record) fill(u event.User, listed map[string]json.RawMessage, v version) bool {
	wanted := func(field string) bool {
		if listed == nil {
			return true
		}
		if _, ok := listed[field]; ok {
			return true
		}
		_, known := r.versions[field]
		return !known
	}
	changed := false
	for _, f := range profileFields {
		if wanted(f.name) && r.claim(f.name, v) {
			f.copy(&r.User, u)
			changed = true
		}
	}
	if wanted(fieldAttributes) && r.setAttributes(u.Attributes, v) {
		changed = true
	}
	for _, field := range sortedKeys(listed) {
		if key, ok := strings.CutPrefix(field, attributePrefix); ok {
			val, present := u.Attributes[key]
			if r.setAttribute(key, val, present, v) {
				changed = true
			}
		}
	}
	return changed
}

// claim records v as field's version and reports true if v is newer than
// the field's current version (or it has none); otherwise it changes
// nothing and reports false.
func (r *record) claim(field string, v version) bool {
	if cur, ok := r.versions[field]; ok && !v.newerThan(cur) {
		return false
	}
	r.versions[field] = v
	return true
}

// attributeVersion is the version of one attribute: the newer of the
// version of the whole map and the attribute's own.
func (r *record) attributeVersion(key string) (version, bool) {
	whole, okWhole := r.versions[fieldAttributes]
	own, okOwn := r.versions[attributePrefix+key]
	if !okWhole || (okOwn && own.newerThan(whole)) {
		return own, okOwn
	}
	return whole, true
}

// setAttribute sets (present) or removes one attribute as of v.
func (r *record) setAttribute(key string, val json.RawMessage, present bool, v version) bool {
	if cur, ok := r.attributeVersion(key); ok && !v.newerThan(cur) {
		return false
	}
	r.versions[attributePrefix+key] = v
	r.putAttribute(key, val, present)
	return true
}

// setAttributes replaces the attribute map with m as of v, except the
// attributes that a newer event set on their own: those keep their value.
func (r *record) setAttributes(m map[string]json.RawMessage, v version) bool {
	if !r.claim(fieldAttributes, v) {
		return false
	}
	keys := map[string]bool{}
	for k := range r.Attributes {
		keys[k] = true
	}
	for k := range m {
		keys[k] = true
	}
	for field := range r.versions {
		if k, ok := strings.CutPrefix(field, attributePrefix); ok {
			keys[k] = true
		}
	}
	for k := range keys {
		if own, ok := r.versions[attributePrefix+k]; ok && own.newerThan(v) {
			continue
		}
		delete(r.versions, attributePrefix+k) // v covers it now
		val, present := m[k]
		r.putAttribute(k, val, present)
	}
	return true
}

func (r *record) putAttribute(key string, val json.RawMessage, present bool) {
	if !present {
		delete(r.Attributes, key)
		if len(r.Attributes) == 0 {
			r.Attributes = nil
		}
		return
	}
	if r.Attributes == nil {
		r.Attributes = map[string]json.RawMessage{}
	}
	r.Attributes[key] = slices.Clone(val)
}

// erase forgets everything personal about the user: its profile, and the
// field versions (whose attribute names are data too). The ID and the
// tombstone stay.
func (r *record) erase() {
	r.User = User{AccountID: r.AccountID, ID: r.ID, Deleted: true, LastEventAt: r.LastEventAt, LastEventID: r.LastEventID}
	r.versions = map[string]version{}
}

func (r *record) clone() *record {
	c := &record{User: r.User, versions: maps.Clone(r.versions)}
	c.Roles = slices.Clone(r.Roles)
	c.Tags = slices.Clone(r.Tags)
	c.Attributes = maps.Clone(r.Attributes)
	if c.versions == nil {
		c.versions = map[string]version{}
	}
	return c
}

func nonEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
