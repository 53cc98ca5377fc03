package github

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"

	gh "github.com/google/go-github/v66/github"

	"github.com/credbroker/credbroker/broker"
)

// Accept stores a delivery for the leader to act on; added is false for a
// delivery seen before (broker.Delivery.Key: the signed body's digest).
// inbox.Runner.Accept is one.
type Accept func(ctx context.Context, d broker.Delivery) (added bool, err error)

// DeliveryHandler receives the GitHub App's webhooks on any replica. It
// requires X-Hub-Signature-256: a delivery unsigned, mis-signed or signed
// only with the legacy SHA-1 header is a 401 and reaches nobody. The
// deliveries credbroker acts on — installation suspend, unsuspend,
// deleted and new_permissions_accepted, installation_target renamed — are
// stored through accept and answered 202 at once: GitHub gives a delivery
// 10 seconds and does not redeliver a failed one by itself, so nothing is
// done on the request. A body seen before is answered 200 and acted on no
// more, under whatever X-GitHub-Delivery it comes: the signature covers
// the body, not that header, so a captured body replayed under fresh ids
// is still one delivery. One that cannot be stored, 503 (GitHub shows it
// failed and it can be redelivered). What a delivery says is a hint: the
// leader asks GitHub's API before it acts (refresh.Refresher.Act).
func DeliveryHandler(secret []byte, accept Accept, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := gh.DeliveryID(r)
		if r.Header.Get(gh.SHA256SignatureHeader) == "" {
			log.WarnContext(r.Context(), "GitHub webhook refused: no X-Hub-Signature-256", slog.String("delivery", id))
			http.Error(w, "X-Hub-Signature-256 is required", http.StatusUnauthorized)
			return
		}
		payload, err := gh.ValidatePayload(r, secret)
		if err != nil {
			log.WarnContext(r.Context(), "GitHub webhook refused", slog.String("delivery", id), slog.Any("error", err))
			http.Error(w, "signature does not match", http.StatusUnauthorized)
			return
		}
		if id == "" {
			http.Error(w, "X-GitHub-Delivery is required", http.StatusBadRequest)
			return
		}
		event, err := gh.ParseWebHook(gh.WebHookType(r), payload)
		if err != nil {
			http.Error(w, "unreadable event", http.StatusBadRequest)
			return
		}
		d, ok := deliveryOf(event)
		if !ok {
			w.WriteHeader(http.StatusNoContent) // signed, but nothing credbroker acts on
			return
		}
		sum := sha256.Sum256(payload)
		d.ID, d.Digest = id, "sha256:"+hex.EncodeToString(sum[:])
		added, err := accept(r.Context(), d)
		if err != nil {
			log.ErrorContext(r.Context(), "GitHub delivery not stored", slog.String("delivery", id), slog.Any("error", err))
			http.Error(w, "the delivery could not be stored; redeliver it", http.StatusServiceUnavailable)
			return
		}
		log.InfoContext(r.Context(), "GitHub delivery", slog.String("delivery", id), slog.Int64("installation", d.InstallationID),
			slog.String("change", string(d.Change)), slog.Bool("new", added))
		if !added {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// deliveryOf reads what credbroker acts on from a parsed event.
func deliveryOf(event any) (broker.Delivery, bool) {
	switch ev := event.(type) {
	case *gh.InstallationEvent:
		change := broker.InstallationChange(ev.GetAction())
		switch change {
		case broker.InstallationSuspended, broker.InstallationUnsuspended, broker.InstallationDeleted, broker.InstallationPermissionsChanged:
			if id := ev.GetInstallation().GetID(); id != 0 {
				return broker.Delivery{InstallationID: id, Change: change, Account: ownerOf(ev.GetInstallation().GetAccount())}, true
			}
		}
	case *gh.InstallationTargetEvent:
		if ev.GetAction() == string(broker.AccountRenamed) && ev.GetAccount().GetID() != 0 {
			return broker.Delivery{InstallationID: ev.GetInstallation().GetID(), Change: broker.AccountRenamed, Account: ownerOf(ev.GetAccount())}, true
		}
	}
	return broker.Delivery{}, false
}

func ownerOf(u *gh.User) broker.Owner {
	return broker.Owner{Login: u.GetLogin(), ID: u.GetID(), Type: broker.OwnerType(u.GetType())}
}
