package receiver

import (
	"container/list"
	"context"
	"strconv"
	"sync"
)

// DedupStore remembers which webhook-ids have been applied, so that a
// delivery repeated by the sender (a retry after a lost answer, an operator's
// redelivery) is applied once.
//
// The receiver uses it in three steps around the handler:
//
//  1. Claim the id. Only one caller at a time holds the claim of an id;
//     others learn that it is in progress, or already done.
//  2. Complete the claim after the handler succeeded: the id is done for
//     good and later claims answer ClaimAlreadyDone.
//  3. Or Release the claim after the handler failed, so that the sender's
//     retry can claim it and apply the event.
//
// Implementations must be safe for concurrent use. MemoryDedup and SQLDedup
// are the two in this package.
type DedupStore interface {
	// Claim tries to take id for processing. A ClaimAcquired claim must be
	// completed or released by the caller.
	Claim(ctx context.Context, id string) (Claim, error)
	// Complete marks the claim's id done. It succeeds even if the claim was
	// lost meanwhile (a lapsed lease), since the handler did apply the
	// event. It is idempotent.
	Complete(ctx context.Context, c Claim) error
	// Release gives up the claim without marking the id done. It does
	// nothing if the claim is no longer the caller's (a lapsed lease taken
	// over by another caller) or the id is done.
	Release(ctx context.Context, c Claim) error
}

// ClaimState says what Claim found.
type ClaimState int

const (
	// ClaimAcquired: the caller holds the claim and must Complete or
	// Release it.
	ClaimAcquired ClaimState = iota + 1
	// ClaimAlreadyDone: the id was completed before; do not apply again.
	ClaimAlreadyDone
	// ClaimInProgress: another caller holds the claim right now.
	ClaimInProgress
)

// String names the state.
func (s ClaimState) String() string {
	switch s {
	case ClaimAcquired:
		return "acquired"
	case ClaimAlreadyDone:
		return "already done"
	case ClaimInProgress:
		return "in progress"
	}
	return "ClaimState(" + strconv.Itoa(int(s)) + ")"
}

// Claim is the answer of DedupStore.Claim.
type Claim struct {
	// ID is the claimed webhook-id.
	ID string
	// State says whether the caller holds the claim.
	State ClaimState
	// Token identifies this holder of the claim (set when State is
	// ClaimAcquired), so that a holder whose claim was taken over cannot
	// release its successor's.
	Token string
}

// DefaultMemoryDedupEntries is how many done ids a MemoryDedup remembers when
// NewMemoryDedup is given no bound.
const DefaultMemoryDedupEntries = 100_000

// MemoryDedup is a DedupStore in the process's memory, for a receiver that
// runs as one process. It remembers up to a bound of done ids and forgets the
// least recently seen first; a duplicate that arrives after its id was
// forgotten is applied again, and a restart forgets everything. Size the
// bound above the number of events the receiver gets within the sender's
// retry horizon (about three days), or use SQLDedup, which remembers across
// restarts and processes.
//
// Ids being handled are not counted in the bound and never forgotten while
// claimed; there is at most one per request in flight.
//
// A MemoryDedup is safe for concurrent use. The zero value is not usable:
// call NewMemoryDedup.
type MemoryDedup struct {
	mu      sync.Mutex
	max     int
	done    map[string]*list.Element // values of lru are ids
	lru     *list.List               // front: most recently seen
	claimed map[string]string        // id → token of its holder
	next    uint64                   // last token issued
}

var _ DedupStore = (*MemoryDedup)(nil)

// NewMemoryDedup returns an empty MemoryDedup that remembers up to
// maxEntries done ids; zero or less means DefaultMemoryDedupEntries.
func NewMemoryDedup(maxEntries int) *MemoryDedup {
	if maxEntries <= 0 {
		maxEntries = DefaultMemoryDedupEntries
	}
	return &MemoryDedup{
		max:     maxEntries,
		done:    map[string]*list.Element{},
		lru:     list.New(),
		claimed: map[string]string{},
	}
}

// Claim implements DedupStore. It never fails.
func (m *MemoryDedup) Claim(_ context.Context, id string) (Claim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.done[id]; ok {
		m.lru.MoveToFront(el)
		return Claim{ID: id, State: ClaimAlreadyDone}, nil
	}
	if _, ok := m.claimed[id]; ok {
		return Claim{ID: id, State: ClaimInProgress}, nil
	}
	m.next++
	token := strconv.FormatUint(m.next, 10)
	m.claimed[id] = token
	return Claim{ID: id, State: ClaimAcquired, Token: token}, nil
}

// Complete implements DedupStore. It never fails.
func (m *MemoryDedup) Complete(_ context.Context, c Claim) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.claimed, c.ID)
	if el, ok := m.done[c.ID]; ok {
		m.lru.MoveToFront(el)
		return nil
	}
	m.done[c.ID] = m.lru.PushFront(c.ID)
	for m.lru.Len() > m.max {
		oldest := m.lru.Back()
		m.lru.Remove(oldest)
		delete(m.done, oldest.Value.(string))
	}
	return nil
}

// Release implements DedupStore. It never fails.
func (m *MemoryDedup) Release(_ context.Context, c Claim) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if token, ok := m.claimed[c.ID]; ok && token == c.Token {
		delete(m.claimed, c.ID)
	}
	return nil
}

// Len reports how many done ids m remembers.
func (m *MemoryDedup) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}
