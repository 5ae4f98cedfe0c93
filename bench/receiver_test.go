package bench_test

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/userhooks/userhooks/bench"
	"github.com/userhooks/userhooks/signature"
)

func newSecret(t *testing.T) signature.Secret {
	t.Helper()
	s, err := signature.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newReceiver(t *testing.T, hosts int) *bench.Receiver {
	t.Helper()
	r, err := bench.NewReceiver(hosts, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// post sends body to url signed with secret as message msgID and returns
// the status code.
func post(t *testing.T, url, msgID string, secret signature.Secret) int {
	t.Helper()
	body := []byte(`{"id":"` + msgID + `"}`)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	signature.SetHeaders(req.Header, msgID, time.Now(), body, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestReceiver_RecordsFirstReceiptPerMessageAndEndpoint(t *testing.T) {
	r := newReceiver(t, 2)
	secret := newSecret(t)
	urlA, err := r.AddEndpoint("a", 0, []signature.Secret{secret}, false)
	if err != nil {
		t.Fatal(err)
	}
	urlB, err := r.AddEndpoint("b", 1, []signature.Secret{secret}, false)
	if err != nil {
		t.Fatal(err)
	}
	rec := r.Record()
	before := time.Now()
	for _, u := range []string{urlA, urlA, urlB} {
		if code := post(t, u, "msg_1", secret); code != http.StatusNoContent {
			t.Fatalf("POST %s = %d, want 204", u, code)
		}
	}
	if isClosed(rec.Done()) {
		t.Fatal("Done closed before Expect was called")
	}
	rec.Expect(2, 0)
	if !isClosed(rec.Done()) {
		t.Fatal("Done not closed with the two expected deliveries recorded")
	}
	st := rec.Stats()
	if len(st.Receipts) != 2 || st.Duplicates != 1 || st.Rejected != 0 || st.Failed != 0 {
		t.Fatalf("stats = %d receipts, %d duplicates, %d rejected, %d failed; want 2, 1, 0, 0",
			len(st.Receipts), st.Duplicates, st.Rejected, st.Failed)
	}
	for _, ep := range []string{"a", "b"} {
		at, ok := st.Receipts[bench.ReceiptKey{MessageID: "msg_1", Endpoint: ep}]
		if !ok || at.Before(before) || at.After(time.Now()) {
			t.Errorf("receipt of msg_1 at %s = %v, %v; want a time during the test", ep, at, ok)
		}
	}
}

func TestReceiver_RejectsBadSignaturesAndRecordsNothing(t *testing.T) {
	r := newReceiver(t, 1)
	u, err := r.AddEndpoint("a", 0, []signature.Secret{newSecret(t)}, false)
	if err != nil {
		t.Fatal(err)
	}
	rec := r.Record()
	if code := post(t, u, "msg_1", newSecret(t)); code != http.StatusUnauthorized {
		t.Fatalf("POST signed with another secret = %d, want 401", code)
	}
	st := rec.Stats()
	if st.Rejected != 1 || len(st.Receipts) != 0 {
		t.Errorf("stats = %d rejected, %d receipts; want 1, 0", st.Rejected, len(st.Receipts))
	}
}

func TestReceiver_FailingEndpointAnswers503AndCountsDistinctDeliveries(t *testing.T) {
	r := newReceiver(t, 1)
	secret := newSecret(t)
	u, err := r.AddEndpoint("w0", 0, []signature.Secret{secret}, true)
	if err != nil {
		t.Fatal(err)
	}
	rec := r.Record()
	rec.Expect(0, 2)
	for _, id := range []string{"msg_1", "msg_1", "msg_2"} {
		if code := post(t, u, id, secret); code != http.StatusServiceUnavailable {
			t.Fatalf("POST to a failing endpoint = %d, want 503", code)
		}
	}
	if !isClosed(rec.Done()) {
		t.Error("Done not closed after two distinct failed deliveries")
	}
	if ok, failed := rec.Counts(); ok != 0 || failed != 2 {
		t.Errorf("Counts = %d, %d; want 0, 2", ok, failed)
	}
}

func TestReceiver_NewRecordingReplacesTheOld(t *testing.T) {
	r := newReceiver(t, 1)
	secret := newSecret(t)
	u, err := r.AddEndpoint("a", 0, []signature.Secret{secret}, false)
	if err != nil {
		t.Fatal(err)
	}
	first := r.Record()
	post(t, u, "msg_1", secret)
	second := r.Record()
	post(t, u, "msg_2", secret)
	if ok, _ := first.Counts(); ok != 1 {
		t.Errorf("first recording holds %d deliveries, want 1", ok)
	}
	if _, ok := second.Stats().Receipts[bench.ReceiptKey{MessageID: "msg_2", Endpoint: "a"}]; !ok {
		t.Error("second recording misses msg_2")
	}
}

func TestReceiver_SpreadsEndpointsOverHosts(t *testing.T) {
	r := newReceiver(t, 2)
	host := func(n int) string {
		u, err := r.AddEndpoint("e", n, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		return p.Hostname()
	}
	if h0, h1, h2 := host(0), host(1), host(2); h0 != "127.0.0.1" || h1 != "127.0.0.2" || h2 != h0 {
		t.Errorf("hosts of endpoints 0, 1, 2 = %s, %s, %s; want 127.0.0.1, 127.0.0.2, 127.0.0.1", h0, h1, h2)
	}
}

func TestReceiver_RefusesWhatItDoesNotServe(t *testing.T) {
	r := newReceiver(t, 1)
	secret := newSecret(t)
	u, err := r.AddEndpoint("a", 0, []signature.Secret{secret}, false)
	if err != nil {
		t.Fatal(err)
	}
	rec := r.Record()
	base, _, _ := bytes.Cut([]byte(u), []byte("/hooks/"))
	if code := post(t, string(base)+"/hooks/unknown", "msg_1", secret); code != http.StatusNotFound {
		t.Errorf("POST to an unknown endpoint = %d, want 404", code)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET = %d, want 404", resp.StatusCode)
	}
	if ok, _ := rec.Counts(); ok != 0 {
		t.Errorf("recorded %d deliveries, want none", ok)
	}

	for _, name := range []string{"", "a/b", "a b", "ä"} {
		if _, err := r.AddEndpoint(name, 0, nil, false); err == nil {
			t.Errorf("AddEndpoint(%q) succeeded, want an error", name)
		}
	}
	if _, err := r.AddEndpoint("x", -1, nil, false); err == nil {
		t.Error("AddEndpoint with a negative number succeeded")
	}
	for _, hosts := range []int{0, 255} {
		if _, err := bench.NewReceiver(hosts, true); err == nil {
			t.Errorf("NewReceiver(%d) succeeded, want an error", hosts)
		}
	}
}
