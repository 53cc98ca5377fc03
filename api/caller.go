package api

import "context"

type adminKey struct{}

// WithCaller records whether the caller is an admin, as the server's guard
// decided, for the few rules that need the stored tenant to decide. Without
// it (no guard in front, as in tests of the services alone) the services
// trust the caller fully, as such a server does.
func WithCaller(ctx context.Context, admin bool) context.Context {
	return context.WithValue(ctx, adminKey{}, admin)
}

// restricted reports whether the caller is known not to be an admin.
func restricted(ctx context.Context) bool {
	admin, ok := ctx.Value(adminKey{}).(bool)
	return ok && !admin
}
