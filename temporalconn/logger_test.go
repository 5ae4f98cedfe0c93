package temporalconn_test

import (
	"errors"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/userhooks/userhooks/temporalconn"
)

func TestLogger_KeepsKeyValuesAndDemotesRefusedAttempts(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := temporalconn.NewLogger(zap.New(core)).With("worker", "w1")

	l.Info("started", "task_queue", "userhooks", 42, "odd-key", "dangling")
	l.Error("Activity error.", "Error", temporal.NewNonRetryableApplicationError("attempt 1: HTTP 500", "ServerError", nil))
	l.Error("Activity error.", "Error", errors.New("store unreachable"))

	entries := logs.All()
	if len(entries) != 3 {
		t.Fatalf("got %d log entries, want 3", len(entries))
	}
	got := entries[0].ContextMap()
	if got["worker"] != "w1" || got["task_queue"] != "userhooks" || got["42"] != "odd-key" || got["!BADKEY"] != "dangling" {
		t.Errorf("fields = %v", got)
	}
	if entries[1].Level != zapcore.DebugLevel {
		t.Errorf("refused delivery attempt logged at %s, want debug", entries[1].Level)
	}
	if entries[2].Level != zapcore.ErrorLevel {
		t.Errorf("infrastructure error logged at %s, want error", entries[2].Level)
	}
}
