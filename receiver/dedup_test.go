package receiver_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/userhooks/userhooks/receiver"
)

func mustClaim(t *testing.T, s receiver.DedupStore, id string, want receiver.ClaimState) receiver.Claim {
	t.Helper()
	c, err := s.Claim(context.Background(), id)
	if err != nil {
		t.Fatalf("Claim(%s): %v", id, err)
	}
	if c.State != want {
		t.Fatalf("Claim(%s) = %s, want %s", id, c.State, want)
	}
	if c.ID != id {
		t.Fatalf("Claim(%s).ID = %q", id, c.ID)
	}
	return c
}

// TestDedupStores is the contract every DedupStore keeps.
func TestDedupStores(t *testing.T) {
	ctx := context.Background()
	for _, st := range dedupStores {
		t.Run(st.name+"/completed id is already done", func(t *testing.T) {
			s := st.open(t)
			c := mustClaim(t, s, "a", receiver.ClaimAcquired)
			if err := s.Complete(ctx, c); err != nil {
				t.Fatal(err)
			}
			mustClaim(t, s, "a", receiver.ClaimAlreadyDone)
			if err := s.Complete(ctx, c); err != nil {
				t.Errorf("second Complete: %v", err)
			}
			mustClaim(t, s, "a", receiver.ClaimAlreadyDone)
			mustClaim(t, s, "b", receiver.ClaimAcquired)
		})
		t.Run(st.name+"/claimed id is in progress", func(t *testing.T) {
			s := st.open(t)
			mustClaim(t, s, "a", receiver.ClaimAcquired)
			mustClaim(t, s, "a", receiver.ClaimInProgress)
		})
		t.Run(st.name+"/released id can be claimed again", func(t *testing.T) {
			s := st.open(t)
			c := mustClaim(t, s, "a", receiver.ClaimAcquired)
			if err := s.Release(ctx, c); err != nil {
				t.Fatal(err)
			}
			c2 := mustClaim(t, s, "a", receiver.ClaimAcquired)
			if c2.Token == c.Token {
				t.Errorf("new claim reuses token %q", c.Token)
			}
		})
		t.Run(st.name+"/release by a former holder keeps the claim", func(t *testing.T) {
			s := st.open(t)
			c := mustClaim(t, s, "a", receiver.ClaimAcquired)
			stale := c
			stale.Token = "not-the-holder"
			if err := s.Release(ctx, stale); err != nil {
				t.Fatal(err)
			}
			mustClaim(t, s, "a", receiver.ClaimInProgress)
		})
		t.Run(st.name+"/release after complete keeps it done", func(t *testing.T) {
			s := st.open(t)
			c := mustClaim(t, s, "a", receiver.ClaimAcquired)
			if err := s.Complete(ctx, c); err != nil {
				t.Fatal(err)
			}
			if err := s.Release(ctx, c); err != nil {
				t.Fatal(err)
			}
			mustClaim(t, s, "a", receiver.ClaimAlreadyDone)
		})
		t.Run(st.name+"/concurrent claims have one winner", func(t *testing.T) {
			s := st.open(t)
			var acquired, inProgress atomic.Int32
			start := make(chan struct{})
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					<-start
					c, err := s.Claim(ctx, "a")
					switch {
					case err != nil:
						t.Error(err)
					case c.State == receiver.ClaimAcquired:
						acquired.Add(1)
					case c.State == receiver.ClaimInProgress:
						inProgress.Add(1)
					}
				})
			}
			close(start)
			wg.Wait()
			if acquired.Load() != 1 || inProgress.Load() != 19 {
				t.Errorf("acquired %d, in progress %d; want 1 and 19", acquired.Load(), inProgress.Load())
			}
		})
	}
}

func TestMemoryDedup_ForgetsLeastRecentlySeenBeyondItsBound(t *testing.T) {
	ctx := context.Background()
	s := receiver.NewMemoryDedup(2)
	for _, id := range []string{"a", "b"} {
		if err := s.Complete(ctx, mustClaim(t, s, id, receiver.ClaimAcquired)); err != nil {
			t.Fatal(err)
		}
	}
	mustClaim(t, s, "a", receiver.ClaimAlreadyDone) // a is now the most recently seen
	if err := s.Complete(ctx, mustClaim(t, s, "c", receiver.ClaimAcquired)); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Errorf("Len = %d, want the bound 2", s.Len())
	}
	mustClaim(t, s, "a", receiver.ClaimAlreadyDone)
	mustClaim(t, s, "c", receiver.ClaimAlreadyDone)
	mustClaim(t, s, "b", receiver.ClaimAcquired) // forgotten
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestSQLDedup_LapsedClaimIsTakenOver(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: now}
	s := newSQLDedup(t, receiver.SQLDedupOptions{Lease: time.Minute, Now: clk.now})
	crashed := mustClaim(t, s, "a", receiver.ClaimAcquired)
	clk.advance(59 * time.Second)
	mustClaim(t, s, "a", receiver.ClaimInProgress)
	clk.advance(time.Second)
	successor := mustClaim(t, s, "a", receiver.ClaimAcquired)

	// The crashed holder, back from the dead, cannot release its
	// successor's claim.
	if err := s.Release(ctx, crashed); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, s, "a", receiver.ClaimInProgress)
	if err := s.Complete(ctx, successor); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, s, "a", receiver.ClaimAlreadyDone)
}

func TestSQLDedup_MarksSurviveReopening(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dedup.db")
	db := openSQLite(t, path)
	s, err := receiver.OpenSQLDedup(ctx, db, receiver.SQLDedupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, mustClaim(t, s, "a", receiver.ClaimAcquired)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	again, err := receiver.OpenSQLDedup(ctx, openSQLite(t, path), receiver.SQLDedupOptions{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	mustClaim(t, again, "a", receiver.ClaimAlreadyDone)
}

func TestSQLDedup_MarkDoneTxCommitsAndRollsBackWithTheTransaction(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t, filepath.Join(t.TempDir(), "dedup.db"))
	s, err := receiver.OpenSQLDedup(ctx, db, receiver.SQLDedupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inTx := func(f func(tx *sql.Tx)) *sql.Tx {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		f(tx)
		return tx
	}
	markDone := func(tx *sql.Tx, want bool) {
		t.Helper()
		first, err := s.MarkDoneTx(ctx, tx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if first != want {
			t.Fatalf("MarkDoneTx first = %v, want %v", first, want)
		}
	}

	c := mustClaim(t, s, "a", receiver.ClaimAcquired)
	if err := inTx(func(tx *sql.Tx) { markDone(tx, true) }).Rollback(); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, s, "a", receiver.ClaimInProgress) // the claim is still there

	if err := inTx(func(tx *sql.Tx) { markDone(tx, true) }).Commit(); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, s, "a", receiver.ClaimAlreadyDone)
	if err := inTx(func(tx *sql.Tx) { markDone(tx, false) }).Rollback(); err != nil {
		t.Fatal(err)
	}
	// The receiver's own Complete afterwards changes nothing.
	if err := s.Complete(ctx, c); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, s, "a", receiver.ClaimAlreadyDone)
}

func TestSQLDedup_PruneForgetsOldMarksAndLapsedClaims(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: now}
	s := newSQLDedup(t, receiver.SQLDedupOptions{Lease: time.Minute, Now: clk.now})
	if err := s.Complete(ctx, mustClaim(t, s, "old", receiver.ClaimAcquired)); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, s, "lapsed", receiver.ClaimAcquired)
	clk.advance(time.Hour)
	if err := s.Complete(ctx, mustClaim(t, s, "recent", receiver.ClaimAcquired)); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, s, "live", receiver.ClaimAcquired)

	n, err := s.Prune(ctx, clk.now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("Prune removed %d rows, want 2", n)
	}
	mustClaim(t, s, "old", receiver.ClaimAcquired)
	mustClaim(t, s, "recent", receiver.ClaimAlreadyDone)
	mustClaim(t, s, "live", receiver.ClaimInProgress)
}

func TestOpenSQLDedup_RefusesBadOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := receiver.OpenSQLDedup(ctx, nil, receiver.SQLDedupOptions{}); err == nil {
		t.Error("OpenSQLDedup(nil db) = nil error")
	}
	db := openSQLite(t, filepath.Join(t.TempDir(), "dedup.db"))
	if _, err := receiver.OpenSQLDedup(ctx, db, receiver.SQLDedupOptions{Lease: -time.Second}); err == nil {
		t.Error("OpenSQLDedup(negative lease) = nil error")
	}
	db.Close()
	if _, err := receiver.OpenSQLDedup(ctx, db, receiver.SQLDedupOptions{}); err == nil {
		t.Error("OpenSQLDedup(closed db) = nil error")
	}
}
