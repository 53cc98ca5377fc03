package server

import (
	"context"
	"log/slog"

	"google.golang.org/grpc/status"

	"github.com/credbroker/credbroker/broker"
)

// audit records a call that issued a credential or changed a tenant.
func (g *Guard) audit(ctx context.Context, c *call, req, resp any, err error) {
	if !c.rule.Audit {
		return
	}
	rec := broker.AuditRecord{Time: g.cfg.Clock.Now().UTC(), Caller: c.id.Name, AuthMethod: c.id.Method, TokenSHA256: c.id.TokenHash,
		Peer: c.peer, Method: c.method, TenantID: c.rule.TenantOf(req), Result: status.Code(err).String()}
	if r, ok := resp.(interface{ GetFingerprint() string }); ok && err == nil {
		rec.Fingerprint = r.GetFingerprint()
	}
	g.log.InfoContext(ctx, "audit", slog.String("caller", rec.Caller), slog.String("auth", rec.AuthMethod),
		slog.String("token_sha256", rec.TokenSHA256), slog.String("peer", rec.Peer), slog.String("method", rec.Method),
		slog.String("tenant", rec.TenantID), slog.String("result", rec.Result), slog.String("fingerprint", rec.Fingerprint))
	if g.cfg.Audit != nil {
		if err := g.cfg.Audit.AppendAudit(context.WithoutCancel(ctx), rec); err != nil {
			g.log.ErrorContext(ctx, "store audit record", slog.Any("error", err))
		}
	}
}
