package github

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	gh "github.com/google/go-github/v66/github"

	"github.com/credbroker/credbroker/broker"
)

// Error is a failed GitHub or registry call, with the reason it failed.
type Error struct {
	// Op names the call, e.g. "mint token for installation 42".
	Op     string
	Cause  broker.Reason
	Status int // HTTP status, 0 when no response arrived
	// Temporary is true when the same call may succeed later unchanged
	// (5xx, timeouts, connection failures).
	Temporary bool
	Err       error
}

func (e *Error) Error() string {
	msg := e.Op + ": " + string(e.Cause)
	if e.Status != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Reason implements the interface broker.ReasonOf looks for.
func (e *Error) Reason() broker.Reason { return e.Cause }

// RateLimitError means GitHub refused the call for a rate limit. Wait is how
// long until the limit resets (primary) or GitHub's Retry-After (secondary).
type RateLimitError struct {
	Op        string
	Wait      time.Duration
	Secondary bool
}

func (e *RateLimitError) Error() string {
	kind := "primary"
	if e.Secondary {
		kind = "secondary"
	}
	return fmt.Sprintf("%s: %s rate limit, retry in %s", e.Op, kind, e.Wait.Round(time.Second))
}

// Reason implements the interface broker.ReasonOf looks for.
func (e *RateLimitError) Reason() broker.Reason { return broker.ReasonRateLimited }

// RetryAfter implements the interface broker.RetryAfterOf looks for.
func (e *RateLimitError) RetryAfter() time.Duration { return e.Wait }

// defaultSecondaryWait is GitHub's advice when a secondary limit comes
// without Retry-After: wait at least a minute.
const defaultSecondaryWait = time.Minute

// statusReasons says what an HTTP status means for one kind of call; a
// status without an entry is GITHUB_UNAVAILABLE when it is a 5xx and
// otherwise an unexpected answer, reported with the status.
type statusReasons map[int]broker.Reason

// integrationNotFound is GitHub's message for a JWT whose iss names no App.
const integrationNotFound = "Integration not found"

// classify turns a go-github error into an *Error or *RateLimitError. Only
// GitHub's message is kept from the response: it never echoes credentials.
func classify(op string, err error, reasons statusReasons, now time.Time) error {
	var rl *gh.RateLimitError
	if errors.As(err, &rl) {
		return &RateLimitError{Op: op, Wait: max(rl.Rate.Reset.Sub(now), 0)}
	}
	var abuse *gh.AbuseRateLimitError
	if errors.As(err, &abuse) {
		wait := defaultSecondaryWait
		if abuse.RetryAfter != nil {
			wait = *abuse.RetryAfter
		}
		return &RateLimitError{Op: op, Wait: wait, Secondary: true}
	}
	var resp *gh.ErrorResponse
	if errors.As(err, &resp) && resp.Response != nil {
		return fromStatus(op, resp.Response, errors.New(resp.Message), reasons, now)
	}
	return transportError(op, err)
}

// fromStatus classifies a non-2xx response. go-github v66 recognises rate
// limits only on 403; GitHub also sends them as 429, handled here.
func fromStatus(op string, resp *http.Response, err error, reasons statusReasons, now time.Time) error {
	code := resp.StatusCode
	if code == http.StatusTooManyRequests || code == http.StatusForbidden {
		if resp.Header.Get("X-RateLimit-Remaining") == "0" {
			if reset, perr := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); perr == nil {
				return &RateLimitError{Op: op, Wait: max(time.Unix(reset, 0).Sub(now), 0)}
			}
		}
		if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil {
			return &RateLimitError{Op: op, Wait: time.Duration(secs) * time.Second, Secondary: true}
		}
		if code == http.StatusTooManyRequests {
			return &RateLimitError{Op: op, Wait: defaultSecondaryWait, Secondary: true}
		}
	}
	if code == http.StatusNotFound && err != nil && err.Error() == integrationNotFound {
		// A JWT for an App GitHub does not know: the App's credentials are
		// wrong, the installation is not gone.
		return &Error{Op: op, Cause: broker.ReasonAppCredentialsRejected, Status: code, Err: err}
	}
	if reason, ok := reasons[code]; ok {
		return &Error{Op: op, Cause: reason, Status: code, Err: err}
	}
	if code >= 500 {
		return &Error{Op: op, Cause: broker.ReasonGitHubUnavailable, Status: code, Temporary: true, Err: err}
	}
	return &Error{Op: op, Cause: broker.ReasonGitHubUnavailable, Status: code, Err: fmt.Errorf("unexpected answer: %w", err)}
}

// transportError classifies a call that got no response.
func transportError(op string, err error) error {
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) || errors.Is(err, net.ErrClosed) {
		return &Error{Op: op, Cause: broker.ReasonGitHubUnavailable, Temporary: true, Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", op, err)
	}
	return &Error{Op: op, Cause: broker.ReasonGitHubUnavailable, Temporary: true, Err: err}
}
