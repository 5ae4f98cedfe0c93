// Package devserver runs a real Temporal development server — the `temporal`
// CLI's `server start-dev`, with the Web UI, persisted to a SQLite file —
// as a child process, for the dev command, local tests and benchmarks.
//
// If no `temporal` binary is found, it installs the pinned CLI version with
// `go install` into a project-local bin directory, so a fresh clone needs
// nothing but Go.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// CLIModule is the Temporal CLI installed when none is found. v1.5.1 is
// the newest release that installs with `go install` (later ones carry a
// replace directive); it embeds Temporal server 1.29.1 and Web UI 2.42.
const CLIModule = "github.com/temporalio/cli/cmd/temporal@v1.5.1"

// Options configure a dev server.
type Options struct {
	// BinDir is where the CLI is looked for (and installed) before PATH.
	BinDir string
	// DBFile persists the server's state; empty means in memory.
	DBFile string
	// IP the server listens on; 127.0.0.1 when empty.
	IP string
	// Port of the frontend (gRPC); 7233 when zero. UIPort of the Web UI;
	// 8233 when zero, -1 to run without the UI.
	Port, UIPort int
	// Namespace to create; "default" always exists.
	Namespace string
	// SearchAttributes to register at start.
	SearchAttributes map[string]enumspb.IndexedValueType
	// UICodecEndpoint is the codec server the Web UI asks to decode
	// payloads (http://host:port); empty shows payloads as stored.
	UICodecEndpoint string
	// Log receives the server's output; nil discards.
	Log io.Writer
	// Progress receives messages about installing the CLI; nil discards.
	Progress io.Writer
}

// Server is a running dev server.
type Server struct {
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	// Address is the frontend's host:port; UIURL the Web UI's base URL
	// ("" without UI).
	Address string
	UIURL   string
}

// FindCLI returns the path of a `temporal` binary: binDir first, then PATH.
// It installs CLIModule into binDir when neither has one.
func FindCLI(ctx context.Context, binDir string, log io.Writer) (string, error) {
	if binDir != "" {
		p := filepath.Join(binDir, "temporal")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("temporal"); err == nil {
		return p, nil
	}
	if binDir == "" {
		return "", errors.New("no temporal CLI on PATH and no directory to install it into")
	}
	abs, err := filepath.Abs(binDir)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(log, "Installing the Temporal CLI (%s) into %s; the first build takes several minutes…\n", CLIModule, abs)
	cmd := exec.CommandContext(ctx, "go", "install", CLIModule)
	cmd.Env = append(os.Environ(), "GOBIN="+abs)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go install %s: %w", CLIModule, err)
	}
	return filepath.Join(abs, "temporal"), nil
}

// Start runs a dev server and returns once it answers health checks, or
// when ctx ends.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.IP == "" {
		opts.IP = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = 7233
	}
	if opts.UIPort == 0 {
		opts.UIPort = 8233
	}
	bin, err := FindCLI(ctx, opts.BinDir, opts.Progress)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(opts.IP, strconv.Itoa(opts.Port))
	if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("port %s is already in use: is another Temporal server running? Stop it or choose another port", addr)
	}
	args := []string{"server", "start-dev", "--ip", opts.IP, "--port", strconv.Itoa(opts.Port), "--log-format", "json", "--log-level", "warn"}
	if opts.UIPort > 0 {
		args = append(args, "--ui-port", strconv.Itoa(opts.UIPort))
		if opts.UICodecEndpoint != "" {
			args = append(args, "--ui-codec-endpoint", opts.UICodecEndpoint)
		}
	} else {
		args = append(args, "--headless")
	}
	if opts.DBFile != "" {
		if err := os.MkdirAll(filepath.Dir(opts.DBFile), 0o755); err != nil {
			return nil, err
		}
		args = append(args, "--db-filename", opts.DBFile)
	}
	if opts.Namespace != "" && opts.Namespace != "default" {
		args = append(args, "--namespace", opts.Namespace)
	}
	for name, typ := range opts.SearchAttributes {
		args = append(args, "--search-attribute", name+"="+saTypeName(typ))
	}
	// Not CommandContext: the server must outlive a start-up context.
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = opts.Log, opts.Log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{cmd: cmd, done: make(chan struct{}), Address: addr}
	if opts.UIPort > 0 {
		s.UIURL = fmt.Sprintf("http://%s:%d", opts.IP, opts.UIPort)
	}
	go func() { s.waitErr = cmd.Wait(); close(s.done) }()
	if err := s.waitHealthy(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		c, err := client.Dial(client.Options{HostPort: s.Address, Logger: nopLogger{}})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("temporal dev server exited during start-up: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("temporal dev server at %s not healthy: %w (last error: %v)", s.Address, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop interrupts the server, waits up to 10 s for it to exit, then kills
// it. It is safe to call more than once.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	return nil
}

// Done is closed when the server process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

func saTypeName(t enumspb.IndexedValueType) string {
	switch t {
	case enumspb.INDEXED_VALUE_TYPE_KEYWORD:
		return "Keyword"
	case enumspb.INDEXED_VALUE_TYPE_INT:
		return "Int"
	case enumspb.INDEXED_VALUE_TYPE_TEXT:
		return "Text"
	case enumspb.INDEXED_VALUE_TYPE_BOOL:
		return "Bool"
	case enumspb.INDEXED_VALUE_TYPE_DOUBLE:
		return "Double"
	case enumspb.INDEXED_VALUE_TYPE_DATETIME:
		return "Datetime"
	case enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST:
		return "KeywordList"
	}
	return "Keyword"
}

// nopLogger silences the SDK while health checks poll a starting server.
type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
