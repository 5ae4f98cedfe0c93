// Command bench measures userhooks end to end: it starts a Temporal dev
// server (or connects to one), runs userhooks workers and a local receiver
// in this process, publishes events to subscriptions and reports
// deliveries per second, publish and publish→receipt latency, history
// events and workflow tasks per delivery, CPU per delivery and memory
// with deliveries waiting between retries, each set against the
// single-workflow ceiling and the direct floor measured in the same run.
//
//	go run ./cmd/bench                                   # 300 events × 10 subscriptions, full speed
//	go run ./cmd/bench -rate 20/s -duration 10s          # latency at a steady load
//	go run ./cmd/bench -events 0 -refs=false -waiting 10000   # memory with 10,000 deliveries waiting
//	go run ./cmd/bench -events 300 -max-in-flight 10     # what the per-endpoint gate costs
//
// See BENCHMARKS.md for the figures and how to read them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/userhooks/userhooks/bench"
	"github.com/userhooks/userhooks/devserver"
	"github.com/userhooks/userhooks/payloadcodec"
	"github.com/userhooks/userhooks/temporalconn"
	"github.com/userhooks/userhooks/workflows"
)

type options struct {
	address    string
	namespace  string
	port       int
	dbFile     string
	serverLog  string
	serverPID  int
	serverDesc string
	rate       string
	jsonOut    bool
	cpuProfile string
	terminate  string
	cfg        bench.Config
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	o := options{cfg: bench.DefaultConfig()}
	c := &o.cfg
	fs.StringVar(&o.address, "temporal-address", "", "Temporal frontend host:port to use; empty starts a dev server")
	fs.StringVar(&o.namespace, "namespace", "default", "Temporal namespace")
	fs.IntVar(&o.port, "port", 7433, "frontend port of the dev server this command starts (not 7233, so it never meets `worker dev`)")
	fs.StringVar(&o.dbFile, "db-file", "", "persist the dev server to this SQLite file (default: in memory)")
	fs.StringVar(&o.serverLog, "server-log", "", "write the dev server's log to this file")
	fs.StringVar(&o.serverDesc, "server-description", "", "what the server given by -temporal-address is, for the report")
	fs.IntVar(&o.serverPID, "server-pid", 0, "process ID of the Temporal server given by -temporal-address, to report its CPU time")
	fs.IntVar(&c.Events, "events", c.Events, "events to publish at full speed")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "concurrent publishers at full speed")
	fs.StringVar(&o.rate, "rate", "", "publish open loop at this rate instead, e.g. 20/s (with -duration)")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "how long to publish with -rate")
	fs.IntVar(&c.Subscriptions, "subscriptions", c.Subscriptions, "subscriptions each event goes to (the fan-out)")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", 0, "per-endpoint limit on every subscription, so deliveries go through the endpoint gates (0: no limit)")
	fs.IntVar(&c.Workers, "workers", c.Workers, "userhooks workers in this process, each with its own connection")
	fs.BoolVar(&c.References, "refs", c.References, "also run the single-workflow ceiling and the direct floor")
	fs.IntVar(&c.Warmup, "warmup", c.Warmup, "unmeasured events before measuring")
	fs.IntVar(&c.HistorySample, "history-sample", c.HistorySample, "events whose histories (parent and deliveries) are read")
	fs.IntVar(&c.Waiting, "waiting", 0, "park this many deliveries between retries and measure memory (e.g. 10000)")
	fs.IntVar(&c.WaitingFanOut, "waiting-fanout", c.WaitingFanOut, "subscriptions per event for -waiting")
	fs.StringVar(&o.terminate, "terminate-waiting", "auto", "terminate the waiting deliveries at the end: true, false or auto (true with -temporal-address)")
	fs.IntVar(&c.Hosts, "hosts", 0, "loopback addresses the receiver listens on (0: one per subscription, at most 16)")
	fs.BoolVar(&c.Verify, "verify", c.Verify, "verify every delivery's signature at the receiver")
	fs.BoolVar(&c.PlaintextHistory, "plaintext-history", false, "do not encrypt payloads (production encrypts them)")
	fs.DurationVar(&c.PhaseTimeout, "timeout", c.PhaseTimeout, "limit of each phase")
	fs.BoolVar(&c.SeparatePublisher, "separate-publisher", false, "publish through a connection of its own, as an API process without a worker (default: the first worker's, so events start eagerly)")
	fs.IntVar(&c.StickyCache, "sticky-cache", 0, "SDK sticky workflow cache size (0: the SDK's default, 10,000)")
	fs.IntVar(&c.WorkerOptions.MaxConcurrentWorkflowTaskPollers, "wft-pollers", 0, "workflow task pollers per worker (0: SDK default)")
	fs.IntVar(&c.WorkerOptions.MaxConcurrentActivityTaskPollers, "activity-pollers", 0, "activity task pollers per worker (0: SDK default)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process during userhooks' phase to this file")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.rate != "" {
		r, err := bench.ParseRate(o.rate)
		if err != nil {
			return o, err
		}
		c.Rate = r
	}
	switch o.terminate {
	case "auto":
		c.TerminateWaiting = o.address != ""
	case "true", "false":
		c.TerminateWaiting = o.terminate == "true"
	default:
		return o, fmt.Errorf("-terminate-waiting %q: want true, false or auto", o.terminate)
	}
	if o.address == "" && (o.port <= 0 || o.port > 65535) {
		return o, fmt.Errorf("-port %d: want 1 to 65535", o.port)
	}
	if err := c.Validate(); err != nil {
		return o, err
	}
	return o, nil
}

func run(ctx context.Context, o options, stdout, progress io.Writer) error {
	if l, err := bench.ReadLoadAverage(); err == nil {
		fmt.Fprintf(progress, "load average before the run: %s\n", l)
	}
	zl, err := temporalconn.NewZapLogger("warn")
	if err != nil {
		return err
	}
	defer zl.Sync() //nolint:errcheck // nothing to do on exit
	env := bench.Env{Namespace: o.namespace, ServerPID: o.serverPID}
	address := o.address
	if address == "" {
		srvOpts := devserver.Options{
			BinDir: "bin", Port: o.port, UIPort: -1, DBFile: o.dbFile,
			Namespace: o.namespace, SearchAttributes: workflows.SearchAttributes(), Progress: progress,
		}
		if o.serverLog != "" {
			f, err := os.Create(o.serverLog)
			if err != nil {
				return fmt.Errorf("server log: %w", err)
			}
			defer f.Close()
			srvOpts.Log = f
		}
		fmt.Fprintf(progress, "starting a Temporal dev server on 127.0.0.1:%d…\n", o.port)
		srv, err := devserver.Start(ctx, srvOpts)
		if err != nil {
			return err
		}
		defer srv.Stop()
		address = srv.Address
		if pid, err := bench.FindChildProcess("temporal"); err == nil {
			env.ServerPID = pid
		}
		store := "in memory"
		if o.dbFile != "" {
			store = "SQLite file " + o.dbFile
		}
		env.Description = fmt.Sprintf("dev server (temporal server start-dev, %s, %s) at %s", devserver.CLIModule, store, address)
	} else {
		env.Description = "server at " + address
		if o.serverDesc != "" {
			env.Description = o.serverDesc + " at " + address
		}
	}
	env.Dial = func(dc converter.DataConverter) (client.Client, error) {
		return client.Dial(client.Options{
			HostPort: address, Namespace: o.namespace, DataConverter: dc,
			FailureConverter: payloadcodec.NewFailureConverter(dc),
			Logger:           temporalconn.NewLogger(zl),
		})
	}

	cfg := o.cfg
	cfg.Progress = progress
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		cfg.CPUProfile = f
	}
	rep, runErr := bench.Run(ctx, env, cfg)
	if rep != nil {
		var err error
		if o.jsonOut {
			err = rep.WriteJSON(stdout)
		} else {
			err = rep.WriteText(stdout)
		}
		if err != nil {
			return err
		}
	}
	return runErr
}
