package activities_test

import (
	"path/filepath"
	"testing"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/signature"
	"github.com/userhooks/userhooks/subscription"
)

func TestMatchSubscriptions_TheWorkersDefaultLimitAppliesToSubscriptionsWithoutOne(t *testing.T) {
	store, err := subscription.OpenSQLite(filepath.Join(t.TempDir(), "subs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	limits := map[string]int{} // subscription ID → its own MaxInFlight
	for _, own := range []int{0, 1, 7} {
		key, err := signature.GenerateSecret()
		if err != nil {
			t.Fatal(err)
		}
		s := subscription.Subscription{AccountID: "acme", URL: "https://r.example/hooks", Enabled: true,
			Secrets: []subscription.Secret{{Key: key}}, MaxInFlight: own}
		if err := store.Create(t.Context(), &s); err != nil {
			t.Fatal(err)
		}
		limits[s.ID] = own
	}

	for _, def := range []int{0, 3} {
		a := &activities.Activities{Store: store, DefaultMaxInFlight: def}
		res, err := a.MatchSubscriptions(t.Context(), activities.MatchInput{AccountID: "acme", EventType: event.TypeUserCreated, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Targets) != len(limits) {
			t.Fatalf("%d targets, want %d", len(res.Targets), len(limits))
		}
		for _, tg := range res.Targets {
			want := limits[tg.SubscriptionID]
			if want == 0 {
				want = def
			}
			if tg.MaxInFlight != want {
				t.Errorf("worker default %d: subscription with limit %d has target MaxInFlight %d, want %d",
					def, limits[tg.SubscriptionID], tg.MaxInFlight, want)
			}
		}
	}
}
