package refresh

import (
	"slices"
	"time"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/broker/internal/kit"
)

// Refresh timing defaults.
const (
	// DefaultLead renews a 1-hour App token at 50 minutes (minus jitter):
	// at most 1.23 mints per installation per hour, and ten minutes in which
	// a failing renewal is retried before the token expires.
	DefaultLead       = 10 * time.Minute
	DefaultPATRecheck = 6 * time.Hour
	DefaultResync     = 30 * time.Second
	DefaultProbeRetry = 5 * time.Minute
	// DefaultProbeTimeout covers a registry's token and manifest requests
	// and the retries for replication lag, with room to spare.
	DefaultProbeTimeout = time.Minute
	DefaultProbeWorkers = 4
	// DefaultRenewTimeout is far beyond a healthy mint (well under a
	// second) and far within the lead.
	DefaultRenewTimeout = 2 * time.Minute
)

// timing holds the rules of when a credential is renewed and when a failed
// renewal is tried again. It reads no clock: every rule is a function of
// the times it is given.
type timing struct {
	lead        time.Duration
	patRecheck  time.Duration
	patWarnings []time.Duration // longest first
	jitter      func() float64  // in [0, 1)
}

// due is when a credential is renewed. An App token: lead before it expires
// (at most a sixth of its life), earlier by up to a tenth of the lead at
// random so that installations minted together spread out. A PAT:
// patRecheck after its validation, or at its next expiry warning if sooner.
func (tm timing) due(cred broker.Credential, validated time.Time) time.Time {
	if cred.Kind == broker.KindPAT || cred.ExpiresAt.IsZero() {
		due := validated.Add(tm.patRecheck)
		if cred.ExpiresAt.IsZero() {
			return due
		}
		for _, before := range append(slices.Clone(tm.patWarnings), 0) {
			if at := cred.ExpiresAt.Add(-before); at.After(validated) && at.Before(due) {
				due = at
			}
		}
		return due
	}
	lead := tm.lead
	if !cred.IssuedAt.IsZero() {
		lead = min(lead, cred.ExpiresAt.Sub(cred.IssuedAt)/6)
	}
	lead += time.Duration(tm.jitter() * float64(lead/10))
	if due := cred.ExpiresAt.Add(-lead); due.After(validated) {
		return due
	}
	return validated.Add(time.Second) // expires within the lead: renew at once
}

// retryWait is how long a key waits after its failures-th consecutive
// failure: an exponential backoff with jitter (5s to 5m; 1m to 1h for
// failures only a person can fix), no longer than half the remaining life
// of the last good credential (so that a short outage is retried before it
// expires) or than the time left until the expiry warning is due, and no
// sooner than GitHub asks.
func (tm timing) retryWait(last broker.Credential, failures int, err error, now time.Time) time.Duration {
	floor, ceiling := 5*time.Second, 5*time.Minute
	if broker.Permanent(broker.ReasonOf(err)) {
		floor, ceiling = time.Minute, time.Hour
	}
	wait := kit.Backoff(failures-1, floor, ceiling, tm.jitter)
	if exp := last.ExpiresAt; last.Token != "" && !exp.IsZero() && now.Before(exp) {
		wait = min(wait, exp.Sub(now)/2)
		// Be trying at the moment the expiry warning is due.
		if warn := tm.expiryWarning(last); last.Kind == broker.KindGitHubApp && warn.After(now) {
			wait = min(wait, warn.Sub(now))
		}
	}
	return max(wait, broker.RetryAfterOf(err), time.Second)
}

// expiryWarning is when an App token whose renewal keeps failing is
// announced as expiring: half the lead before it expires.
func (tm timing) expiryWarning(cred broker.Credential) time.Time {
	return cred.ExpiresAt.Add(-tm.lead / 2)
}
