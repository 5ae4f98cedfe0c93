package usersync

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/userhooks/userhooks/event"
)

// source simulates the platform: it holds the true state of its users and
// publishes an event for every change, each carrying the user's whole state
// after the change, as userhooks does.
type source struct {
	rng     *rand.Rand
	now     time.Time
	seq     int
	users   map[string]*event.User
	deleted map[string]event.User // last state before the delete
	events  []event.Event
}

func newSource(seed uint64) *source {
	return &source{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:     time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC),
		users:   map[string]*event.User{},
		deleted: map[string]event.User{},
	}
}

// publish records an event about u at the source's clock, which moves on by
// 0 to 2 ms, so that some events share a timestamp and the ID breaks the tie.
func (s *source) publish(t *testing.T, typ event.Type, u event.User, prev map[string]json.RawMessage) {
	t.Helper()
	s.seq++
	e := event.Event{
		ID:        fmt.Sprintf("evt_%05d", s.seq), // sorts in publication order
		Type:      typ,
		Timestamp: s.now,
		AccountID: "acme",
		Data:      event.Data{User: cloneEventUser(u), PreviousAttributes: prev},
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("the simulated source made an invalid event: %v", err)
	}
	s.events = append(s.events, e)
	s.now = s.now.Add(time.Duration(s.rng.IntN(3)) * time.Millisecond)
}

var (
	pick      = func(r *rand.Rand, xs ...string) string { return xs[r.IntN(len(xs))] }
	attrKeys  = []string{"plan", "seats", "theme"}
	roleNames = []string{"admin", "editor", "member", "billing"}
)

func (s *source) randomList(names []string) []string {
	var out []string
	for _, n := range names {
		if s.rng.IntN(2) == 0 {
			out = append(out, n)
		}
	}
	return out
}

func (s *source) randomValue(key string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"%s":%d}`, key, s.rng.IntN(1000)))
}

func (s *source) create(t *testing.T, id string) {
	u := &event.User{
		ID: id, Email: id + "@example.com", Name: "User " + id, Status: "active",
		Roles: s.randomList(roleNames), Tags: s.randomList([]string{"vip", "beta"}),
		Attributes: map[string]json.RawMessage{"plan": json.RawMessage(`"free"`)},
	}
	s.users[id] = u
	s.publish(t, event.TypeUserCreated, *u, nil)
}

// update changes one to three random fields of a live user.
func (s *source) update(t *testing.T, id string) {
	u := s.users[id]
	prev := map[string]json.RawMessage{}
	old := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
	for range 1 + s.rng.IntN(3) {
		switch f := pick(s.rng, "email", "username", "name", "status", "roles", "tags", "attributes", "attr"); f {
		case "email":
			prev[f] = old(u.Email)
			u.Email = fmt.Sprintf("%s+%d@example.com", id, s.seq)
		case "username":
			prev[f] = old(u.Username)
			u.Username = fmt.Sprintf("%s_%d", id, s.seq)
		case "name":
			prev[f] = old(u.Name)
			u.Name = fmt.Sprintf("Name %d", s.seq)
		case "status":
			prev[f] = old(u.Status)
			u.Status = pick(s.rng, "active", "suspended", "")
		case "roles":
			prev[f] = old(u.Roles)
			u.Roles = s.randomList(roleNames)
		case "tags":
			prev[f] = old(u.Tags)
			u.Tags = s.randomList([]string{"vip", "beta", "churn-risk"})
		case "attributes": // the whole map at once
			prev[f] = old(u.Attributes)
			u.Attributes = map[string]json.RawMessage{}
			for _, k := range s.randomList(attrKeys) {
				u.Attributes[k] = s.randomValue(k)
			}
		case "attr": // one attribute: set or unset
			k := pick(s.rng, attrKeys...)
			if v, ok := u.Attributes[k]; ok {
				prev["attributes."+k] = v
			} else {
				prev["attributes."+k] = json.RawMessage(`null`)
			}
			if s.rng.IntN(3) == 0 {
				delete(u.Attributes, k)
			} else {
				if u.Attributes == nil {
					u.Attributes = map[string]json.RawMessage{}
				}
				u.Attributes[k] = s.randomValue(k)
			}
		}
	}
	s.publish(t, event.TypeUserUpdated, *u, prev)
}

func (s *source) delete(t *testing.T, id string) {
	s.deleted[id] = *s.users[id]
	delete(s.users, id)
	// A delete carries the user's ID only: receivers must not need more.
	s.publish(t, event.TypeUserDeleted, event.User{ID: id}, nil)
}

// want is what a mirror in mode must hold for the user once every event
// arrived: the source's state, or for a deleted user the tombstone.
func (s *source) want(id string, mode DeleteMode) User {
	u, live := s.users[id]
	var last event.Event
	for _, e := range s.events {
		if e.Data.User.ID == id {
			last = e
		}
	}
	w := User{AccountID: "acme", ID: id, LastEventAt: last.Timestamp, LastEventID: last.ID}
	if !live {
		w.Deleted = true
		if mode == EraseOnDelete {
			return w
		}
		d := s.deleted[id]
		u = &d
	}
	w.Email, w.Username, w.Name, w.Status = u.Email, u.Username, u.Name, u.Status
	w.Roles, w.Tags = nonEmpty(slices.Clone(u.Roles)), nonEmpty(slices.Clone(u.Tags))
	if len(u.Attributes) > 0 {
		w.Attributes = maps.Clone(u.Attributes)
	}
	return w
}

func cloneEventUser(u event.User) event.User {
	u.Roles, u.Tags, u.Attributes = slices.Clone(u.Roles), slices.Clone(u.Tags), maps.Clone(u.Attributes)
	return u
}

// mergeAll applies events in the given order, as the mirror does: the
// record of each user, threaded through merge.
func mergeAll(events []event.Event, mode DeleteMode) map[string]*record {
	recs := map[string]*record{}
	for _, e := range events {
		recs[e.Data.User.ID], _ = merge(recs[e.Data.User.ID], e, mode)
	}
	return recs
}

// The property the whole ordering design exists for: however the events of
// a history are shuffled (and repeated), the mirror ends as the source is.
func TestMerge_AnyArrivalOrderConvergesToTheSource(t *testing.T) {
	for seed := range uint64(40) {
		for _, mode := range []DeleteMode{DeactivateOnDelete, EraseOnDelete} {
			t.Run(fmt.Sprintf("seed %d %s", seed, mode), func(t *testing.T) {
				src := newSource(seed)
				ids := []string{"u1", "u2", "u3"}
				for _, id := range ids {
					src.create(t, id)
				}
				for range 25 {
					id := pick(src.rng, ids...)
					if _, live := src.users[id]; !live {
						continue
					}
					if src.rng.IntN(12) == 0 {
						src.delete(t, id)
					} else {
						src.update(t, id)
					}
				}
				// A mirror that subscribed late never gets the create of a
				// user that was updated since: the updates must do.
				late := slices.DeleteFunc(slices.Clone(src.events), func(e event.Event) bool {
					if e.Type != event.TypeUserCreated {
						return false
					}
					for _, o := range src.events {
						if o.Type == event.TypeUserUpdated && o.Data.User.ID == e.Data.User.ID {
							return true
						}
					}
					return false
				})
				for shuffle := range 30 {
					order := slices.Clone(src.events)
					if shuffle%2 == 1 {
						order = slices.Clone(late)
					}
					src.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
					if shuffle%3 == 0 { // a few deliveries twice
						order = append(order, order[:5]...)
					}
					recs := mergeAll(order, mode)
					for _, id := range ids {
						got, want := recs[id].User, src.want(id, mode)
						if !reflect.DeepEqual(got, want) {
							t.Fatalf("shuffle %d, user %s:\n got %+v\nwant %+v", shuffle, id, got, want)
						}
					}
				}
			})
		}
	}
}

func TestMerge_ReportsWhatItDid(t *testing.T) {
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(id string, typ event.Type, at int, u event.User, prev ...string) event.Event {
		e := event.Event{ID: id, Type: typ, Timestamp: ts.Add(time.Duration(at) * time.Second), AccountID: "acme", Data: event.Data{User: u}}
		for _, p := range prev {
			if e.Data.PreviousAttributes == nil {
				e.Data.PreviousAttributes = map[string]json.RawMessage{}
			}
			e.Data.PreviousAttributes[p] = json.RawMessage(`null`)
		}
		return e
	}
	u := event.User{ID: "u1", Email: "a@example.com"}
	create := ev("e1", event.TypeUserCreated, 1, u)
	update := ev("e2", event.TypeUserUpdated, 2, event.User{ID: "u1", Email: "b@example.com"}, "email")
	del := ev("e3", event.TypeUserDeleted, 3, event.User{ID: "u1"})

	tests := []struct {
		name   string
		before []event.Event
		e      event.Event
		mode   DeleteMode
		want   Action
	}{
		{"create of a new user", nil, create, DeactivateOnDelete, ActionCreated},
		{"update of a new user", nil, update, DeactivateOnDelete, ActionCreated},
		{"delete of a new user", nil, del, DeactivateOnDelete, ActionDeleted},
		{"update after create", []event.Event{create}, update, DeactivateOnDelete, ActionUpdated},
		{"create after update", []event.Event{update}, create, DeactivateOnDelete, ActionIgnoredStale},
		{"same event again", []event.Event{create}, create, DeactivateOnDelete, ActionIgnoredStale},
		{"delete after create", []event.Event{create}, del, DeactivateOnDelete, ActionDeleted},
		{"second delete", []event.Event{del}, ev("e4", event.TypeUserDeleted, 4, event.User{ID: "u1"}), DeactivateOnDelete, ActionIgnoredDeleted},
		{"late update after erase", []event.Event{create, del}, update, EraseOnDelete, ActionIgnoredDeleted},
		{"late update after deactivate", []event.Event{create, del}, update, DeactivateOnDelete, ActionUpdated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := mergeAll(tt.before, tt.mode)
			before := recs["u1"]
			var snapshot *record
			if before != nil {
				snapshot = before.clone()
			}
			got, action := merge(before, tt.e, tt.mode)
			if action != tt.want {
				t.Errorf("action = %s, want %s", action, tt.want)
			}
			if got == nil {
				t.Fatal("merge returned no record")
			}
			if before != nil && !reflect.DeepEqual(before, snapshot) {
				t.Error("merge modified its input record")
			}
			if tt.e.Type == event.TypeUserDeleted || len(tt.before) > 0 && tt.before[len(tt.before)-1].Type == event.TypeUserDeleted {
				if !got.Deleted {
					t.Error("user not deleted")
				}
			}
		})
	}
}
