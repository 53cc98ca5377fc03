package github

import (
	"context"
	"log/slog"
	"net/http"

	gh "github.com/google/go-github/v66/github"

	"github.com/credbroker/credbroker/broker"
)

// InstallationListener is told what GitHub says happened to an App
// installation.
type InstallationListener interface {
	InstallationChanged(ctx context.Context, installationID int64, change broker.InstallationChange)
}

// WebhookHandler receives the GitHub App's webhooks. It verifies
// X-Hub-Signature-256 with secret (an unsigned or mis-signed delivery is a
// 401 and reaches nobody) and passes installation events — suspend,
// unsuspend, deleted, new_permissions_accepted — to the listener that
// current returns; while it returns nil (a replica that does not lead), a
// delivery is answered 503 so that GitHub shows it failed.
func WebhookHandler(secret []byte, current func() InstallationListener, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		payload, err := gh.ValidatePayload(r, secret)
		if err != nil {
			log.WarnContext(r.Context(), "GitHub webhook refused", slog.String("delivery", gh.DeliveryID(r)), slog.Any("error", err))
			http.Error(w, "signature does not match", http.StatusUnauthorized)
			return
		}
		event, err := gh.ParseWebHook(gh.WebHookType(r), payload)
		if err != nil {
			http.Error(w, "unreadable event", http.StatusBadRequest)
			return
		}
		ev, ok := event.(*gh.InstallationEvent)
		if !ok || ev.GetInstallation().GetID() == 0 {
			w.WriteHeader(http.StatusNoContent) // signed, but nothing credbroker acts on
			return
		}
		change := broker.InstallationChange(ev.GetAction())
		switch change {
		case broker.InstallationSuspended, broker.InstallationUnsuspended, broker.InstallationDeleted, broker.InstallationPermissionsChanged:
		default:
			w.WriteHeader(http.StatusNoContent)
			return
		}
		l := current()
		if l == nil {
			http.Error(w, "this replica does not lead; GitHub will show the delivery failed", http.StatusServiceUnavailable)
			return
		}
		log.InfoContext(r.Context(), "GitHub installation event", slog.Int64("installation", ev.GetInstallation().GetID()),
			slog.String("action", ev.GetAction()), slog.String("delivery", gh.DeliveryID(r)))
		l.InstallationChanged(r.Context(), ev.GetInstallation().GetID(), change)
		w.WriteHeader(http.StatusNoContent)
	})
}
