package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/userhooks/userhooks/activities"
	"github.com/userhooks/userhooks/delivery"
	"github.com/userhooks/userhooks/signature"
)

// The fault suite's tools: receivers that misbehave on cue (hang, reset,
// trickle, flood), and a worker running as a separate process.

// newEnvWithSender is newEnv with the worker delivering through sender,
// for faults that depend on the request timeout or the address policy.
func newEnvWithSender(t *testing.T, sender *activities.Sender) *env {
	t.Helper()
	e := newEnvWithoutWorker(t, server.GetDefaultClient())
	e.sender = sender
	e.worker = e.startWorker()
	return e
}

// schedule is a retry schedule without jitter, so tests can predict every
// timer.
func schedule(maxRetryAfter time.Duration, delays ...time.Duration) *delivery.Schedule {
	s := &delivery.Schedule{MaxRetryAfter: delivery.Duration(maxRetryAfter)}
	for _, d := range delays {
		s.Delays = append(s.Delays, delivery.Duration(d))
	}
	return s
}

// stepResult is what one step of a faultReceiver did.
type stepResult struct {
	// Written counts the response bytes the step managed to write.
	Written int64
	// ClientGone is set when the step saw the sender hang up (its request
	// context ended, or a write failed).
	ClientGone bool
	// Took is how long the step ran.
	Took time.Duration
}

// faultStep answers one request of a faultReceiver, whose body has been
// read. A step that waits also returns when release is closed (at the end
// of the test), so that no handler outlives its test.
type faultStep func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) stepResult

// faultRequest is one request a faultReceiver saw.
type faultRequest struct {
	At        time.Time
	WebhookID string
	// Done is set, with Result, once the step has returned.
	Done   bool
	Result stepResult
}

// faultReceiver is an HTTP endpoint whose nth request is answered by its
// nth step, and every later request by 200 OK. It records every request,
// how its step went, and how many connections it accepted.
type faultReceiver struct {
	t       *testing.T
	srv     *httptest.Server
	steps   []faultStep
	release chan struct{}

	mu      sync.Mutex
	got     []faultRequest
	conns   int
	changed chan struct{} // closed and replaced on every change
}

func newFaultReceiver(t *testing.T, steps ...faultStep) *faultReceiver {
	f := &faultReceiver{t: t, steps: steps, release: make(chan struct{}), changed: make(chan struct{})}
	f.srv = httptest.NewUnstartedServer(f)
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.update(func() { f.conns++ })
		}
	}
	f.srv.Start()
	// Cleanups run last-registered first: release the waiting steps, then
	// close the server, which waits for its handlers.
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { close(f.release) })
	return f
}

func (f *faultReceiver) update(change func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change()
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *faultReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, err := io.ReadAll(r.Body); err != nil {
		return
	}
	var n int
	f.update(func() {
		f.got = append(f.got, faultRequest{At: time.Now(), WebhookID: r.Header.Get(signature.HeaderID)})
		n = len(f.got)
	})
	step := answer(http.StatusOK, nil)
	if n <= len(f.steps) {
		step = f.steps[n-1]
	}
	start := time.Now()
	res := step(w, r, f.release)
	res.Took = time.Since(start)
	f.update(func() { f.got[n-1].Done, f.got[n-1].Result = true, res })
}

func (f *faultReceiver) requests() []faultRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]faultRequest(nil), f.got...)
}

func (f *faultReceiver) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

// waitDone waits until the receiver has seen n requests and their steps
// have returned.
func (f *faultReceiver) waitDone(n int, within time.Duration) []faultRequest {
	f.t.Helper()
	return f.wait(n, true, within)
}

// waitArrived waits until the receiver has seen n requests.
func (f *faultReceiver) waitArrived(n int, within time.Duration) []faultRequest {
	f.t.Helper()
	return f.wait(n, false, within)
}

func (f *faultReceiver) wait(n int, done bool, within time.Duration) []faultRequest {
	f.t.Helper()
	timeout := time.After(within)
	for {
		f.mu.Lock()
		got, changed := append([]faultRequest(nil), f.got...), f.changed
		f.mu.Unlock()
		ok := len(got) >= n
		for i := 0; ok && done && i < n; i++ {
			ok = got[i].Done
		}
		if ok {
			return got
		}
		select {
		case <-changed:
		case <-timeout:
			f.t.Fatalf("receiver saw %d requests within %s, want %d (finished: %t): %+v", len(got), within, n, done, got)
		}
	}
}

// answer is a step that answers code with a short JSON body, after
// setHeader (if any) has set response headers.
func answer(code int, setHeader func(http.Header)) faultStep {
	return func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) stepResult {
		if setHeader != nil {
			setHeader(w.Header())
		}
		w.WriteHeader(code)
		n, _ := fmt.Fprintf(w, `{"answer":%d}`, code)
		return stepResult{Written: int64(n)}
	}
}

// hang is a step that never answers: it returns when the sender hangs up
// or the test ends.
func hang(_ http.ResponseWriter, r *http.Request, release <-chan struct{}) stepResult {
	select {
	case <-r.Context().Done():
		return stepResult{ClientGone: true}
	case <-release:
		return stepResult{}
	}
}

// resetAfter is a step that writes prefix (raw bytes of a response, maybe
// none) and then resets the connection: with SO_LINGER 0, close sends RST
// instead of FIN.
func resetAfter(prefix string) faultStep {
	return func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) stepResult {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(fmt.Sprintf("hijack: %v", err))
		}
		n, _ := io.WriteString(conn, prefix)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		conn.Close()
		return stepResult{Written: int64(n)}
	}
}

// trickle is a step that writes head at once, then rest one byte every
// interval, then closes the connection: a raw HTTP response, answered
// slowly. It stops when a write fails (the sender hung up) or the test
// ends.
func trickle(head, rest string, every time.Duration) faultStep {
	return func(w http.ResponseWriter, _ *http.Request, release <-chan struct{}) stepResult {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(fmt.Sprintf("hijack: %v", err))
		}
		defer conn.Close()
		var res stepResult
		write := func(s string) bool {
			n, err := io.WriteString(conn, s)
			res.Written += int64(n)
			res.ClientGone = err != nil
			return err == nil
		}
		if !write(head) {
			return res
		}
		for i := range len(rest) {
			select {
			case <-time.After(every):
			case <-release:
				return res
			}
			if !write(rest[i : i+1]) {
				return res
			}
		}
		return res
	}
}

// rawResponse is an HTTP/1.1 response with a body, as bytes on the wire.
func rawResponse(code int, body string) string {
	return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
}

// flood is a step that answers code with a body of size bytes of
// hugePattern, for as long as the sender reads it.
func flood(code int, size int64) faultStep {
	return func(w http.ResponseWriter, _ *http.Request, release <-chan struct{}) stepResult {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(code)
		chunk := bytes.Repeat([]byte(hugePattern), 32<<10/len(hugePattern))
		var res stepResult
		for res.Written < size {
			select {
			case <-release:
				return res
			default:
			}
			n, err := w.Write(chunk[:min(int64(len(chunk)), size-res.Written)])
			res.Written += int64(n)
			if err != nil {
				res.ClientGone = true
				return res
			}
		}
		return res
	}
}

// hugePattern is what flood's bodies are made of.
const hugePattern = "0123456789abcdef"

// timers returns the durations of the timers a workflow started, in order.
func (e *env) timers(workflowID string) []time.Duration {
	e.t.Helper()
	var out []time.Duration
	for _, ev := range e.history(workflowID) {
		if a := ev.GetTimerStartedEventAttributes(); a != nil {
			out = append(out, a.GetStartToFireTimeout().AsDuration())
		}
	}
	return out
}

// waitHistoryEvent waits until a workflow's history holds an event of the
// given type and returns the first.
func (e *env) waitHistoryEvent(workflowID string, typ enumspb.EventType, within time.Duration) *historypb.HistoryEvent {
	e.t.Helper()
	var found *historypb.HistoryEvent
	waitFor(e.t, within, fmt.Sprintf("%s in the history of %s", typ, workflowID), func() bool {
		h, err := e.tryHistory(workflowID)
		for _, ev := range h {
			if err == nil && ev.GetEventType() == typ {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

// buildWorker builds the worker command into a directory of the test.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	start := time.Now()
	out, err := exec.Command("go", "build", "-o", bin, "github.com/userhooks/userhooks/worker").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./worker: %v\n%s", err, out)
	}
	t.Logf("built the worker in %s", time.Since(start).Round(time.Millisecond))
	return bin
}

// workerProc is a worker running as a separate OS process.
type workerProc struct {
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{} // closed once the process has exited
}

// startWorkerProc runs the worker binary with args, without the
// USERHOOKS_* and TEMPORAL_* variables of the test's environment. The
// process is killed when the test ends, and its output is logged if the
// test failed.
func startWorkerProc(t *testing.T, bin string, args ...string) *workerProc {
	t.Helper()
	p := &workerProc{cmd: exec.Command(bin, args...), log: &syncBuffer{}, exited: make(chan struct{})}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "USERHOOKS_") && !strings.HasPrefix(kv, "TEMPORAL_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		err := p.cmd.Wait()
		fmt.Fprintf(p.log, "(process exited: %v)\n", err)
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("output of the worker process (pid %d):\n%s", p.cmd.Process.Pid, p.log)
		}
	})
	return p
}

// kill sends SIGKILL — no graceful shutdown — and waits for the process to
// be gone.
func (p *workerProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freePort returns a loopback TCP port that is free now, and whose
// port+1000 is free too: the dev server's HTTP API takes that one.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port+1000 > 65535 {
			continue
		}
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1000))
		if err != nil {
			continue
		}
		l2.Close()
		return port
	}
	t.Fatal("found no free pair of ports")
	return 0
}
