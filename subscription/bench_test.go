package subscription_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

// benchSQLiteStore returns a SQLite store holding 1,000 subscriptions laid
// out as accounts×perAccount, every other one limited to user.created and
// user.updated (the rest accept every type), and the IDs of the first
// account's subscriptions.
func benchSQLiteStore(b *testing.B, accounts, perAccount int) (*subscription.SQLiteStore, []string) {
	b.Helper()
	st, err := subscription.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	key, err := signature.GenerateSecret()
	if err != nil {
		b.Fatal(err)
	}
	var first []string
	ctx := context.Background()
	for a := range accounts {
		for i := range perAccount {
			s := subscription.Subscription{
				AccountID: fmt.Sprintf("acct-%03d", a),
				URL:       fmt.Sprintf("https://hooks%d.example.com/a%d/s%d", i%7, a, i),
				Enabled:   true,
				Secrets:   []subscription.Secret{{Key: key}},
			}
			if i%2 == 1 {
				s.EventTypes = []string{"user.created", "user.updated"}
			}
			if err := st.Create(ctx, &s); err != nil {
				b.Fatal(err)
			}
			if a == 0 {
				first = append(first, s.ID)
			}
		}
	}
	return st, first
}

// BenchmarkSQLiteMatch measures the MatchSubscriptions activity's query on
// a store of 1,000 subscriptions: one account holding all of them (a
// fan-out of 1,000, one full page), and 100 accounts of 10 (a fan-out of
// 10 among 1,000).
func BenchmarkSQLiteMatch(b *testing.B) {
	for _, bc := range []struct {
		accounts, perAccount int
	}{
		{1, 1000},
		{100, 10},
	} {
		b.Run(fmt.Sprintf("fanout=%d_of_1000", bc.perAccount), func(b *testing.B) {
			st, _ := benchSQLiteStore(b, bc.accounts, bc.perAccount)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				subs, err := st.Match(ctx, "acct-000", "user.created", "", subscription.MaxPageSize)
				if err != nil {
					b.Fatal(err)
				}
				if len(subs) != bc.perAccount {
					b.Fatalf("matched %d subscriptions, want %d", len(subs), bc.perAccount)
				}
			}
		})
	}
}

// BenchmarkSQLiteGet measures the lookup every Deliver attempt makes (URL
// and secrets by subscription ID) in a store of 1,000 subscriptions.
func BenchmarkSQLiteGet(b *testing.B) {
	st, ids := benchSQLiteStore(b, 100, 10)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := st.Get(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
