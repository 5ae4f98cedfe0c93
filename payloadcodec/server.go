package payloadcodec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Server is a running codec server, started by StartServer.
type Server struct {
	srv  *http.Server
	addr string
	done chan struct{}
	err  error
}

// StartServer listens on addr (host:port; port 0 picks a free one) and
// serves h, usually NewHTTPHandler's, over plain HTTP in the background.
// Put a TLS-terminating proxy in front of it anywhere but on loopback: the
// Web UI passes access tokens only to an https endpoint.
func StartServer(addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("codec server: %w", err)
	}
	s := &Server{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
		close(s.done)
	}()
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.addr }

// URL returns the server's base URL, http://host:port: the codec endpoint
// to give the Web UI (--ui-codec-endpoint) and the CLI (--codec-endpoint).
func (s *Server) URL() string { return "http://" + s.addr }

// Close stops accepting requests, lets running ones finish for up to five
// seconds, and returns the error that stopped serving, if any. It is safe
// to call more than once.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
	return s.err
}
