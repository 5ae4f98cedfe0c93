package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/userhooks/userhooks/apikey"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

// Page sizes of the list operations.
const (
	defaultPageSize = 50
	maxPageSize     = 100
)

// subscriptionView is a subscription as the API shows it. It never holds a
// secret, nor any part of one: secrets are listed by state and expiry only.
// Even a short prefix would give away key bits for no benefit, since a
// subscription has at most a few secrets, told apart by their expiry.
type subscriptionView struct {
	ID          string        `json:"id"`
	AccountID   string        `json:"account_id"`
	URL         string        `json:"url"`
	EventTypes  []string      `json:"event_types"`
	Description string        `json:"description"`
	Enabled     bool          `json:"enabled"`
	Schedule    *scheduleView `json:"schedule"`
	MaxInFlight int           `json:"max_in_flight"`
	Secrets     []secretView  `json:"secrets"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
	Health      healthView    `json:"health"`
}

// healthView is what the store knows of a subscription's endpoint (see
// subscription.Health); each field is null when unset.
type healthView struct {
	// LastSuccessAt is when a delivery last succeeded (at most a minute
	// behind the latest success).
	LastSuccessAt *time.Time `json:"last_success_at"`
	// FailingSince is when the endpoint started failing; null while it is
	// not failing. Automatic disabling measures from it.
	FailingSince *time.Time `json:"failing_since"`
	// DisabledReason says why userhooks disabled the subscription; null
	// while enabled, and when its owner paused it.
	DisabledReason *string `json:"disabled_reason"`
	// DisabledAt is when the subscription was disabled, by userhooks or
	// its owner.
	DisabledAt *time.Time `json:"disabled_at"`
}

func viewHealth(h subscription.Health) healthView {
	at := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	v := healthView{LastSuccessAt: at(h.LastSuccessAt), FailingSince: at(h.FailingSince), DisabledAt: at(h.DisabledAt)}
	if h.DisabledReason != "" {
		reason := h.DisabledReason
		v.DisabledReason = &reason
	}
	return v
}

// scheduleView is a retry schedule override as the API shows it.
type scheduleView struct {
	Delays        []delivery.Duration `json:"delays"`
	Jitter        float64             `json:"jitter"`
	MaxRetryAfter *delivery.Duration  `json:"max_retry_after"`
}

// secretView is what the API says about one signing secret.
type secretView struct {
	// Active is true while the secret signs deliveries.
	Active bool `json:"active"`
	// ExpiresAt is when it stops signing; null means never.
	ExpiresAt *time.Time `json:"expires_at"`
}

// subscriptionWithSecret is a subscription and the secret just generated
// for it: the only answers that ever hold a secret.
type subscriptionWithSecret struct {
	subscriptionView
	Secret string `json:"secret"`
}

type subscriptionList struct {
	Subscriptions []subscriptionView `json:"subscriptions"`
	// NextAfter is the after parameter of the next page, null on the last.
	NextAfter *string `json:"next_after"`
}

func (s *server) view(sub subscription.Subscription) subscriptionView {
	now := s.now()
	v := subscriptionView{
		ID:          sub.ID,
		AccountID:   sub.AccountID,
		URL:         sub.URL,
		EventTypes:  sub.EventTypes,
		Description: sub.Description,
		Enabled:     sub.Enabled,
		MaxInFlight: sub.MaxInFlight,
		Secrets:     make([]secretView, len(sub.Secrets)),
		CreatedAt:   sub.CreatedAt,
		UpdatedAt:   sub.UpdatedAt,
		Health:      viewHealth(sub.Health),
	}
	if v.EventTypes == nil {
		v.EventTypes = []string{}
	}
	if sch := sub.Schedule; sch != nil {
		v.Schedule = &scheduleView{Delays: sch.Delays, Jitter: sch.Jitter}
		if v.Schedule.Delays == nil {
			v.Schedule.Delays = []delivery.Duration{}
		}
		if sch.MaxRetryAfter != 0 {
			mra := sch.MaxRetryAfter
			v.Schedule.MaxRetryAfter = &mra
		}
	}
	for i, sec := range sub.Secrets {
		v.Secrets[i].Active = sec.ActiveAt(now)
		if !sec.ExpiresAt.IsZero() {
			exp := sec.ExpiresAt
			v.Secrets[i].ExpiresAt = &exp
		}
	}
	return v
}

// createSubscriptionRequest is the body of POST /v1/subscriptions.
type createSubscriptionRequest struct {
	URL         string             `json:"url"`
	EventTypes  []string           `json:"event_types"`
	Description string             `json:"description"`
	Schedule    *delivery.Schedule `json:"schedule"`
	Enabled     *bool              `json:"enabled"`
	MaxInFlight int                `json:"max_in_flight"`
}

func (s *server) createSubscription(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	if err := parseQuery(r).err(); err != nil {
		return err
	}
	body, err := readBody(w, r, maxBodyBytes, false, mediaJSON)
	if err != nil {
		return err
	}
	var req createSubscriptionRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	secret, err := signature.GenerateSecret()
	if err != nil {
		return err
	}
	sub := subscription.Subscription{
		AccountID:   key.AccountID,
		URL:         req.URL,
		EventTypes:  req.EventTypes,
		Description: req.Description,
		Enabled:     req.Enabled == nil || *req.Enabled,
		Schedule:    req.Schedule,
		MaxInFlight: req.MaxInFlight,
		Secrets:     []subscription.Secret{{Key: secret}},
	}
	if err := s.validate(r.Context(), sub, true); err != nil {
		return err
	}
	if err := s.cfg.Subscriptions.Create(r.Context(), &sub); err != nil {
		return storeError(err)
	}
	w.Header().Set("Location", "/v1/subscriptions/"+sub.ID)
	return writeJSON(w, http.StatusCreated, subscriptionWithSecret{s.view(sub), secret.Reveal()})
}

// validate checks a subscription about to be stored, and its URL against
// the CheckURL hook when urlChanged.
func (s *server) validate(ctx context.Context, sub subscription.Subscription, urlChanged bool) error {
	if err := sub.Validate(); err != nil {
		return storeError(err)
	}
	if urlChanged && s.cfg.CheckURL != nil {
		if err := s.cfg.CheckURL(ctx, sub.URL); err != nil {
			return unprocessable("the subscription is invalid", "url is not allowed: "+err.Error())
		}
	}
	return nil
}

// storeError maps a subscription store error to an answer.
func storeError(err error) error {
	var verr *subscription.ValidationError
	switch {
	case errors.As(err, &verr):
		return unprocessable("the subscription is invalid", verr.Problems...)
	case errors.Is(err, subscription.ErrNotFound):
		return notFound("subscription")
	}
	return err
}

func (s *server) listSubscriptions(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	q := parseQuery(r, "limit", "after")
	limit := q.limit()
	after := q.get("after")
	if after != "" && !canonicalUUID(after) {
		q.fail("after", "must be a subscription ID (a UUID) from next_after")
	}
	if err := q.err(); err != nil {
		return err
	}
	// One more than asked tells whether another page follows.
	subs, err := s.cfg.Subscriptions.List(r.Context(), key.AccountID, after, limit+1)
	if err != nil {
		return err
	}
	resp := subscriptionList{Subscriptions: []subscriptionView{}}
	if len(subs) > limit {
		subs = subs[:limit]
		next := subs[limit-1].ID
		resp.NextAfter = &next
	}
	for _, sub := range subs {
		resp.Subscriptions = append(resp.Subscriptions, s.view(sub))
	}
	return writeJSON(w, http.StatusOK, resp)
}

// limit reads the limit parameter: defaultPageSize when absent.
func (q *query) limit() int {
	v := q.get("limit")
	if v == "" {
		return defaultPageSize
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPageSize {
		q.fail("limit", "must be a whole number from 1 to %d", maxPageSize)
		return defaultPageSize
	}
	return n
}

// ownSubscription returns the subscription of the request's {id} if it
// belongs to the key's account. Anything else — a malformed ID, an unknown
// one, another account's — is the same 404.
func (s *server) ownSubscription(r *http.Request, key apikey.Key) (subscription.Subscription, error) {
	id := r.PathValue("id")
	if !canonicalUUID(id) {
		return subscription.Subscription{}, notFound("subscription")
	}
	sub, err := s.cfg.Subscriptions.Get(r.Context(), id)
	if errors.Is(err, subscription.ErrNotFound) || (err == nil && sub.AccountID != key.AccountID) {
		return subscription.Subscription{}, notFound("subscription")
	}
	if err != nil {
		return subscription.Subscription{}, err
	}
	return sub, nil
}

func (s *server) getSubscription(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	if err := parseQuery(r).err(); err != nil {
		return err
	}
	sub, err := s.ownSubscription(r, key)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, s.view(sub))
}

// patchFields are the fields PATCH may change.
var patchFields = []string{"url", "event_types", "description", "schedule", "max_in_flight"}

func (s *server) patchSubscription(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	if err := parseQuery(r).err(); err != nil {
		return err
	}
	body, err := readBody(w, r, maxBodyBytes, false, mediaMergePatch, mediaJSON)
	if err != nil {
		return err
	}
	var patch map[string]json.RawMessage
	if err := decodeStrict(body, &patch); err != nil {
		return err
	}
	var unknown []fieldError
	for name := range patch {
		if !slices.Contains(patchFields, name) {
			unknown = append(unknown, fieldError{Detail: "unknown field " + quoteShort(name)})
		}
	}
	if len(unknown) > 0 {
		slices.SortFunc(unknown, func(a, b fieldError) int { return strings.Compare(a.Detail, b.Detail) })
		return badRequest(fmt.Sprintf("the body has fields PATCH does not know; it may change %s", strings.Join(patchFields, ", ")), unknown...)
	}

	unlock := s.locks.lock(r.PathValue("id"))
	defer unlock()
	sub, err := s.ownSubscription(r, key)
	if err != nil {
		return err
	}
	if len(patch) == 0 {
		return writeJSON(w, http.StatusOK, s.view(sub))
	}
	oldURL := sub.URL
	if err := applyPatch(&sub, patch); err != nil {
		return err
	}
	if err := s.validate(r.Context(), sub, sub.URL != oldURL); err != nil {
		return err
	}
	if err := s.cfg.Subscriptions.Update(r.Context(), &sub); err != nil {
		return storeError(err)
	}
	return writeJSON(w, http.StatusOK, s.view(sub))
}

// applyPatch applies a JSON merge patch (RFC 7396) to the patchable fields
// of sub: a field set to null returns to its default (no URL, all event
// types, no description, the default schedule, no concurrency limit of its
// own); an object given for schedule is merged into the current schedule,
// or into the default one when none is set.
func applyPatch(sub *subscription.Subscription, patch map[string]json.RawMessage) error {
	for _, name := range patchFields {
		raw, ok := patch[name]
		if !ok {
			continue
		}
		isNull := bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
		var err error
		switch name {
		case "url":
			sub.URL = ""
			if !isNull {
				err = decodeField(name, raw, &sub.URL)
			}
		case "event_types":
			sub.EventTypes = nil
			if !isNull {
				err = decodeField(name, raw, &sub.EventTypes)
			}
		case "description":
			sub.Description = ""
			if !isNull {
				err = decodeField(name, raw, &sub.Description)
			}
		case "schedule":
			if isNull {
				sub.Schedule = nil
				continue
			}
			sub.Schedule, err = mergeSchedule(sub.Schedule, raw)
		case "max_in_flight":
			sub.MaxInFlight = 0
			if !isNull {
				err = decodeField(name, raw, &sub.MaxInFlight)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeField decodes one field's value strictly into v, reporting problems
// at the field.
func decodeField(name string, raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		p := decodeError(err)
		for i := range p.Errors {
			p.Errors[i].Pointer = "/" + name + p.Errors[i].Pointer
			p.Errors[i].Detail = strings.Replace(p.Errors[i].Detail, "the body", name, 1)
		}
		if len(p.Errors) == 0 {
			p.Errors = []fieldError{{Detail: name + ": " + p.Detail, Pointer: "/" + name}}
		}
		return p
	}
	return nil
}

// mergeSchedule merges a JSON merge patch into a schedule (the default one
// when current is nil) and returns the result.
func mergeSchedule(current *delivery.Schedule, raw json.RawMessage) (*delivery.Schedule, error) {
	base := delivery.DefaultSchedule()
	if current != nil {
		base = *current
	}
	baseJSON, err := json.Marshal(base)
	if err != nil {
		return nil, fmt.Errorf("encode schedule: %w", err)
	}
	var target, patch any
	if err := unmarshalNumbers(baseJSON, &target); err != nil {
		return nil, fmt.Errorf("decode schedule: %w", err)
	}
	if err := unmarshalNumbers(raw, &patch); err != nil {
		return nil, decodeField("schedule", raw, new(delivery.Schedule))
	}
	if _, ok := patch.(map[string]any); !ok {
		return nil, badRequest("the body has a field of the wrong type",
			fieldError{Detail: "schedule must be an object or null", Pointer: "/schedule"})
	}
	merged, err := json.Marshal(mergePatch(target, patch))
	if err != nil {
		return nil, fmt.Errorf("encode merged schedule: %w", err)
	}
	var sch delivery.Schedule
	if err := decodeField("schedule", merged, &sch); err != nil {
		return nil, err
	}
	return &sch, nil
}

func unmarshalNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

// mergePatch applies an RFC 7396 merge patch to target.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
		} else {
			t[k] = mergePatch(t[k], v)
		}
	}
	return t
}

func (s *server) enableSubscription(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	return s.setEnabled(w, r, key, true)
}

func (s *server) disableSubscription(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	return s.setEnabled(w, r, key, false)
}

func (s *server) setEnabled(w http.ResponseWriter, r *http.Request, key apikey.Key, enabled bool) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	unlock := s.locks.lock(r.PathValue("id"))
	defer unlock()
	sub, err := s.ownSubscription(r, key)
	if err != nil {
		return err
	}
	if sub.Enabled != enabled {
		if err := s.cfg.Subscriptions.SetEnabled(r.Context(), sub.ID, enabled); err != nil {
			return storeError(err)
		}
		if sub, err = s.cfg.Subscriptions.Get(r.Context(), sub.ID); err != nil {
			return storeError(err)
		}
	}
	return writeJSON(w, http.StatusOK, s.view(sub))
}

// noBody checks an operation that takes no parameters: no query, and no
// body or an empty JSON object.
func noBody(w http.ResponseWriter, r *http.Request) error {
	if err := parseQuery(r).err(); err != nil {
		return err
	}
	body, err := readBody(w, r, maxBodyBytes, true, mediaJSON)
	if err != nil || body == nil {
		return err
	}
	return decodeStrict(body, &struct{}{})
}

// rotateRequest is the optional body of POST .../rotate-secret.
type rotateRequest struct {
	Overlap *delivery.Duration `json:"overlap"`
}

func (s *server) rotateSecret(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	if err := parseQuery(r).err(); err != nil {
		return err
	}
	body, err := readBody(w, r, maxBodyBytes, true, mediaJSON)
	if err != nil {
		return err
	}
	var req rotateRequest
	if body != nil {
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
	}
	overlap := s.cfg.RotationOverlap
	if req.Overlap != nil {
		overlap = time.Duration(*req.Overlap)
		if overlap < 0 || overlap > MaxRotationOverlap {
			return unprocessable("the rotation is invalid",
				fmt.Sprintf("overlap is %s, want between 0s and %s", overlap, MaxRotationOverlap))
		}
	}
	secret, err := signature.GenerateSecret()
	if err != nil {
		return err
	}

	unlock := s.locks.lock(r.PathValue("id"))
	defer unlock()
	sub, err := s.ownSubscription(r, key)
	if err != nil {
		return err
	}
	sub.Secrets = rotate(sub.Secrets, secret, s.now(), overlap)
	if len(sub.Secrets) > subscription.MaxSecrets {
		return &problem{Status: http.StatusConflict, Detail: fmt.Sprintf(
			"the subscription has %d secrets that still sign, the most it may have is %d; wait for one to expire or rotate with a shorter overlap",
			len(sub.Secrets)-1, subscription.MaxSecrets)}
	}
	if err := s.cfg.Subscriptions.Update(r.Context(), &sub); err != nil {
		return storeError(err)
	}
	return writeJSON(w, http.StatusOK, subscriptionWithSecret{s.view(sub), secret.Reveal()})
}

// rotate returns the secrets after a rotation at now: the new one first,
// then each old one that still signs, set to stop signing at now+overlap
// (or earlier, if it already expires earlier: a rotation never extends an
// old secret's life). Expired secrets, and all old ones when overlap is
// zero, are dropped.
func rotate(old []subscription.Secret, fresh signature.Secret, now time.Time, overlap time.Duration) []subscription.Secret {
	expiry := now.Add(overlap)
	secrets := []subscription.Secret{{Key: fresh}}
	for _, sec := range old {
		if !sec.ActiveAt(now) {
			continue
		}
		exp := expiry
		if !sec.ExpiresAt.IsZero() && sec.ExpiresAt.Before(exp) {
			exp = sec.ExpiresAt
		}
		if !exp.After(now) {
			continue
		}
		secrets = append(secrets, subscription.Secret{Key: sec.Key, ExpiresAt: exp})
	}
	return secrets
}

func (s *server) deleteSubscription(w http.ResponseWriter, r *http.Request, key apikey.Key) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	unlock := s.locks.lock(r.PathValue("id"))
	defer unlock()
	sub, err := s.ownSubscription(r, key)
	if err != nil {
		return err
	}
	if err := s.cfg.Subscriptions.Delete(r.Context(), sub.ID); err != nil {
		return storeError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// canonicalUUID reports whether id is a UUID in canonical form, the only
// form subscription IDs take.
func canonicalUUID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

// keyedMutex serialises the read-modify-write operations on one
// subscription within this process, so that a rotation racing a PATCH
// cannot lose the new secret after it was shown. (Across processes the
// store would need a conditional update.)
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu      sync.Mutex
	waiters int
}

// lock locks key and returns its unlock function.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.waiters++
	k.mu.Unlock()

	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.waiters--; l.waiters == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
