package api

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/credbroker/credbroker/broker"
)

// toStatus maps a domain error to the gRPC status the API returns. It is the
// only place that does. fieldPrefix is prepended to the field paths of an
// *InvalidError (for example "tenant." when the tenant is a request field).
// Errors without a mapping are logged and returned as a bare Internal, so
// that no detail of an unexpected failure reaches the caller.
func toStatus(ctx context.Context, log *slog.Logger, err error, fieldPrefix string) error {
	if _, ok := status.FromError(err); ok {
		return err // already a status: decided by this package
	}
	var invalid *broker.InvalidError
	if errors.As(err, &invalid) {
		return invalidArgument(fieldPrefix, invalid.Violations...)
	}
	if reason := broker.ReasonOf(err); reason != "" {
		return reasonStatus(reason, err)
	}
	switch {
	case errors.Is(err, broker.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, broker.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, broker.ErrConflict):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, broker.ErrNoEncryptionKey), errors.Is(err, broker.ErrUnseal), errors.Is(err, broker.ErrNoGitHubApp):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	log.ErrorContext(ctx, "internal error", slog.Any("error", err))
	return status.Error(codes.Internal, "internal error")
}

// invalidArgument builds InvalidArgument with a google.rpc.BadRequest detail
// naming each field; the REST gateway renders it as HTTP 400 with the
// violations in the JSON body.
func invalidArgument(fieldPrefix string, vs ...broker.FieldViolation) error {
	br := &errdetails.BadRequest{}
	msg := "invalid argument"
	for i, v := range vs {
		field := fieldPrefix + v.Field
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field:       field,
			Description: v.Description,
		})
		switch i {
		case 0:
			msg = field + ": " + v.Description
		case 1:
			msg += " (and more)"
		}
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(br)
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

// ErrorDomain is the domain of the google.rpc.ErrorInfo credbroker attaches.
const ErrorDomain = "credbroker.io"

// reasonStatus maps a failure with a Reason: GitHub or the registry being
// unavailable or rate limited is UNAVAILABLE (try again, after RetryInfo's
// delay when there is one); everything else is a fact about the credential
// that retrying will not change: FAILED_PRECONDITION. An ErrorInfo detail
// carries the reason for clients to branch on.
func reasonStatus(reason broker.Reason, err error) error {
	code := codes.FailedPrecondition
	switch reason {
	case broker.ReasonRateLimited, broker.ReasonGitHubUnavailable, broker.ReasonRegistryUnreachable:
		code = codes.Unavailable
	case broker.ReasonFineGrainedPAT:
		code = codes.InvalidArgument
	}
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: string(reason), Domain: ErrorDomain}}
	if wait := broker.RetryAfterOf(err); wait > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
	}
	st, derr := status.New(code, err.Error()).WithDetails(details...)
	if derr != nil {
		return status.Error(code, err.Error())
	}
	return st.Err()
}
