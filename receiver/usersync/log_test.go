package usersync_test

import (
	"errors"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/userhooks/userhooks/receiver"
	"github.com/userhooks/userhooks/receiver/usersync"
)

func TestLogResults_OneLinePerResultAtItsLevel(t *testing.T) {
	tests := []struct {
		action  usersync.Action
		message string
		level   zapcore.Level
	}{
		{usersync.ActionCreated, "event applied", zapcore.InfoLevel},
		{usersync.ActionUpdated, "event applied", zapcore.InfoLevel},
		{usersync.ActionDeleted, "event applied", zapcore.InfoLevel},
		{usersync.ActionIgnoredStale, "event ignored", zapcore.InfoLevel},
		{usersync.ActionIgnoredDeleted, "event ignored", zapcore.InfoLevel},
		{usersync.ActionDuplicate, "event ignored", zapcore.InfoLevel},
		{usersync.ActionRetryLater, "event deferred", zapcore.WarnLevel},
		{usersync.ActionRejected, "event rejected", zapcore.WarnLevel},
		{usersync.ActionFailed, "event failed", zapcore.ErrorLevel},
	}
	for _, tt := range tests {
		t.Run(string(tt.action), func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			usersync.LogResults(zap.New(core))(usersync.Result{
				Action: tt.action, Status: 204, Reason: receiver.ReasonAccepted, Err: errors.New("boom"),
				EventID: "evt_1", EventType: "user.created", AccountID: "acme", UserID: "u_42",
			})
			if logs.Len() != 1 {
				t.Fatalf("%d lines, want 1", logs.Len())
			}
			e := logs.All()[0]
			f := e.ContextMap()
			if e.Message != tt.message || e.Level != tt.level || f["action"] != string(tt.action) ||
				f["event_id"] != "evt_1" || f["user_id"] != "u_42" || f["account_id"] != "acme" || f["error"] != "boom" {
				t.Errorf("line = %s %s %v", e.Level, e.Message, f)
			}
		})
	}
}
