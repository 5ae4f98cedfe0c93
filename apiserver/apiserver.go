// Package apiserver assembles the userhooks HTTP API from its parts — the
// subscription store, the API keys, the publisher and the delivery log over
// a Temporal client, the egress policy that vets subscription URLs — and
// serves it. The API's own main (cmd/userhooks-api) and `worker dev` use
// it, so both serve the same API.
package apiserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for API keys in PostgreSQL
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/userhooks/userhooks/api"
	"github.com/userhooks/userhooks/apikey"
	"github.com/userhooks/userhooks/deliveries"
	"github.com/userhooks/userhooks/egress"
	"github.com/userhooks/userhooks/starter"
	"github.com/userhooks/userhooks/subscription"
	"github.com/userhooks/userhooks/subscription/stores"
)

// Options are the parts of the API.
type Options struct {
	// Client reaches Temporal; DataConverter is the one it was dialled with
	// (see temporalconn.Config.DataConverter).
	Client        client.Client
	DataConverter converter.DataConverter
	Namespace     string
	TaskQueue     string
	Subscriptions subscription.Store
	Keys          apikey.Store
	// Policy vets subscription URLs when they are created or changed, as
	// the worker's egress client will when it delivers: the same policy
	// belongs in both.
	Policy egress.Policy
	// PageTokenKey signs delivery-list page tokens; every replica of the
	// API must share it. Nil means a random key per process.
	PageTokenKey []byte
	Logger       *zap.Logger
}

// New returns the API's handler.
func New(o Options) (http.Handler, error) {
	svc := deliveries.New(o.Client, deliveries.Options{
		Namespace:     o.Namespace,
		TaskQueue:     o.TaskQueue,
		DataConverter: o.DataConverter,
		PageTokenKey:  o.PageTokenKey,
	})
	policy := o.Policy
	return api.New(api.Config{
		Subscriptions: o.Subscriptions,
		Keys:          o.Keys,
		Publisher:     starter.New(o.Client, starter.Options{TaskQueue: o.TaskQueue}),
		Deliveries:    svc,
		Logger:        o.Logger,
		CheckURL: func(ctx context.Context, raw string) error {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			_, err := policy.CheckURLResolving(ctx, raw, nil)
			return err
		},
	})
}

// OpenKeys opens the API key store in the database that dsn names (see
// stores.Open): the same database as the subscriptions, in tables of its
// own.
func OpenKeys(ctx context.Context, dsn string) (*apikey.SQLStore, error) {
	if path, ok := stores.SQLitePath(dsn); ok {
		return apikey.OpenSQLite(ctx, path)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		// The driver's message may quote the DSN, password included.
		return nil, errors.New("open API key store: the PostgreSQL DSN is not valid")
	}
	st, err := apikey.NewSQLStore(ctx, db, apikey.PostgreSQL)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open API key store in %s: %w", stores.Redacted(dsn), err)
	}
	return st, nil
}

// Server is a running HTTP server, started by Start.
type Server struct {
	srv  *http.Server
	addr string
	done chan error
}

// Start listens on addr (port 0 picks a free one) and serves h in the
// background, with timeouts that keep slow clients from holding
// connections.
func Start(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("API listener: %w", err)
	}
	s := &Server{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		},
		addr: ln.Addr().String(),
		done: make(chan error, 1),
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.addr }

// Done delivers the error that stopped serving: nil after Shutdown.
func (s *Server) Done() <-chan error { return s.done }

// Shutdown stops accepting requests and waits up to grace for running ones.
func (s *Server) Shutdown(grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}
