package temporalconn

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Logger adapts a zap logger to the Temporal SDK's log.Logger, so the SDK's
// own messages and workflow.GetLogger lines share the process's structured
// output.
type Logger struct {
	z *zap.Logger
}

var (
	_ log.Logger     = Logger{}
	_ log.WithLogger = Logger{}
)

// NewLogger wraps z; a nil z logs nothing.
func NewLogger(z *zap.Logger) Logger {
	if z == nil {
		z = zap.NewNop()
	}
	// Skip this adapter's frame so callers' file:line are reported.
	return Logger{z: z.WithOptions(zap.AddCallerSkip(1))}
}

// Debug logs at debug level.
func (l Logger) Debug(msg string, keyvals ...any) { l.z.Debug(msg, fields(keyvals)...) }

// Info logs at info level.
func (l Logger) Info(msg string, keyvals ...any) { l.z.Info(msg, fields(keyvals)...) }

// Warn logs at warn level.
func (l Logger) Warn(msg string, keyvals ...any) { l.z.Warn(msg, fields(keyvals)...) }

// Error logs at error level, except the SDK's report of an activity that
// returned a non-retryable application error: for userhooks that is a
// delivery attempt the receiver refused, an expected outcome that the
// activity has already logged at warn level. It goes to debug.
func (l Logger) Error(msg string, keyvals ...any) {
	if msg == "Activity error." && nonRetryableAppError(keyvals) {
		l.z.Debug(msg, fields(keyvals)...)
		return
	}
	l.z.Error(msg, fields(keyvals)...)
}

func nonRetryableAppError(keyvals []any) bool {
	for _, v := range keyvals {
		var appErr *temporal.ApplicationError
		if err, ok := v.(error); ok && errors.As(err, &appErr) && appErr.NonRetryable() {
			return true
		}
	}
	return false
}

// With returns a logger that adds keyvals to every line.
func (l Logger) With(keyvals ...any) log.Logger { return Logger{z: l.z.With(fields(keyvals)...)} }

// fields turns alternating keys and values into zap fields; a key that is
// not a string, or a key without a value, is kept rather than dropped.
func fields(keyvals []any) []zap.Field {
	fs := make([]zap.Field, 0, (len(keyvals)+1)/2)
	for i := 0; i < len(keyvals); i += 2 {
		key, ok := keyvals[i].(string)
		if !ok {
			key = fmt.Sprint(keyvals[i])
		}
		if i+1 == len(keyvals) {
			fs = append(fs, zap.Any("!BADKEY", key))
			break
		}
		fs = append(fs, zap.Any(key, keyvals[i+1]))
	}
	return fs
}

// NewZapLogger returns the JSON production logger of userhooks processes at
// level ("debug", "info", "warn" or "error").
func NewZapLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.EncoderConfig.TimeKey = "time"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return zc.Build()
}
