package usersync

import (
	"go.uber.org/zap"
)

// LogResults returns an Options.OnResult that logs one line per request to
// log: info for applied, ignored and duplicate events, warn for rejected
// ones and retry-later (deferred) answers, error for failures. The keys are stable
// (action, status, reason, event_id, event_type, account_id, user_id,
// duration, error); no personal data beyond the user ID is logged, and no
// secret.
func LogResults(log *zap.Logger) func(Result) {
	return func(r Result) {
		fields := []zap.Field{
			zap.String("action", string(r.Action)),
			zap.Int("status", r.Status),
			zap.String("reason", string(r.Reason)),
			zap.String("event_id", r.EventID),
			zap.String("event_type", string(r.EventType)),
			zap.String("account_id", r.AccountID),
			zap.String("user_id", r.UserID),
			zap.Duration("duration", r.Duration),
		}
		if r.Err != nil {
			fields = append(fields, zap.Error(r.Err))
		}
		switch r.Action {
		case ActionCreated, ActionUpdated, ActionDeleted:
			log.Info("event applied", fields...)
		case ActionIgnoredStale, ActionIgnoredDeleted, ActionDuplicate:
			log.Info("event ignored", fields...)
		case ActionRetryLater:
			log.Warn("event deferred", fields...)
		case ActionFailed:
			log.Error("event failed", fields...)
		default:
			log.Warn("event rejected", fields...)
		}
	}
}
