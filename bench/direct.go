package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/event"
	"github.com/userhooks/userhooks/signature"
)

// directSender is the direct floor: what delivering costs without
// durability. It encodes the body once per event, signs it per
// subscription and POSTs it through the same SSRF-safe HTTP client the
// Deliver activity uses, one subscription after another.
type directSender struct {
	client *http.Client
	subs   []benchSub
}

func newDirectSender(subs []benchSub) *directSender {
	return &directSender{client: egress.NewClient(loopback, activities.DefaultRequestTimeout), subs: subs}
}

func (d *directSender) send(ctx context.Context, e event.Event) error {
	body, err := e.Marshal()
	if err != nil {
		return err
	}
	for _, s := range d.subs {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("direct: build request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", activities.UserAgent)
		signature.SetHeaders(req.Header, e.ID, time.Now(), body, s.Secrets...)
		resp, err := d.client.Do(req)
		if err != nil {
			return fmt.Errorf("direct: POST to %s: %w", s.Endpoint, err)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, activities.MaxResponseRead)) //nolint:errcheck // only draining for reuse
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("direct: POST to %s: HTTP %d", s.Endpoint, resp.StatusCode)
		}
	}
	return nil
}

// publishDirect is the publishFunc of the direct floor.
func (r *runner) publishDirect(ctx context.Context, e event.Event) (func(context.Context) error, error) {
	return nil, r.direct.send(ctx, e)
}
