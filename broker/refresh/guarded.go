package refresh

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// guarded makes a call into another package (GitHub, a registry) and turns
// its panic into an error, logging the stack: a bug there fails one
// renewal or probe and the process goes on. It matters most inside
// singleflight.DoChan, whose panics nobody can recover.
func guarded[T any](ctx context.Context, log *slog.Logger, what string, call func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			log.ErrorContext(ctx, what+" panicked", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("%s panicked: %v", what, p)
		}
	}()
	return call()
}
