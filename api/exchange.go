package api

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/credbroker/credbroker/broker/exchange"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/credbroker/credbroker/broker"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// Pods says whose Pod a ServiceAccount token is, for the exchange: the
// API server must accept it for credbroker's audience, and it must be
// bound to a Pod. Refusals are *broker.DeniedError; a review that cannot
// be made now is broker.ErrUnavailable.
type Pods interface {
	PodOf(ctx context.Context, token string) (broker.PodIdentity, error)
}

// Limits of an exchange request: a ServiceAccount token is a JWT of a few
// kilobytes, an image reference at most a few hundred bytes.
const (
	maxTokenBytes = 16 << 10
	maxImageBytes = 4 << 10
)

// ExchangeAPI serves credbroker.v1.PullCredentialService: the kubelet
// credential provider plugin's one call. The request carries its own
// credential, the Pod's token, so the Guard lets it through unauthenticated
// (auth.SelfAuthenticated) and this checks the token.
type ExchangeAPI struct {
	credbrokerv1.UnimplementedPullCredentialServiceServer
	tokens    Pods
	exchanger *exchange.Exchanger
	log       *slog.Logger
}

// NewExchangeAPI returns the PullCredentialService.
func NewExchangeAPI(tokens Pods, exchanger *exchange.Exchanger, log *slog.Logger) *ExchangeAPI {
	return &ExchangeAPI{tokens: tokens, exchanger: exchanger, log: log}
}

// ExchangeServiceAccountToken implements credbroker.v1.PullCredentialService.
func (a *ExchangeAPI) ExchangeServiceAccountToken(ctx context.Context, req *credbrokerv1.ExchangeServiceAccountTokenRequest) (*credbrokerv1.ExchangeServiceAccountTokenResponse, error) {
	var vs []broker.FieldViolation
	switch token := req.GetServiceAccountToken(); {
	case token == "":
		vs = append(vs, broker.FieldViolation{Field: "service_account_token", Description: "required: the Pod's ServiceAccount token the kubelet passed to the plugin (tokenAttributes in its CredentialProviderConfig)"})
	case len(token) > maxTokenBytes:
		vs = append(vs, broker.FieldViolation{Field: "service_account_token", Description: "longer than any ServiceAccount token"})
	}
	switch image := req.GetImage(); {
	case image == "":
		vs = append(vs, broker.FieldViolation{Field: "image", Description: "required: the image the kubelet is about to pull"})
	case len(image) > maxImageBytes:
		vs = append(vs, broker.FieldViolation{Field: "image", Description: "longer than any image reference"})
	}
	if len(vs) > 0 {
		return nil, invalidArgument("", vs...)
	}
	pod, err := a.tokens.PodOf(ctx, req.GetServiceAccountToken())
	if err != nil {
		a.exchanger.Refused(ctx, req.GetImage(), err)
		return nil, exchangeStatus(ctx, a.log, err)
	}
	g, err := a.exchanger.Exchange(ctx, pod, req.GetImage())
	if err != nil {
		return nil, exchangeStatus(ctx, a.log, err)
	}
	resp := &credbrokerv1.ExchangeServiceAccountTokenResponse{
		TenantId:      g.TenantID,
		Auth:          map[string]*credbrokerv1.RegistryAuth{g.Prefix: {Username: g.Credential.Username, Password: g.Credential.Token}},
		CacheDuration: durationpb.New(g.CacheFor),
		ExpireTime:    timestamp(g.Credential.ExpiresAt),
		Fingerprint:   g.Fingerprint,
	}
	return resp, nil
}

// exchangeStatus maps an exchange's error: a denial to its code with an
// ErrorInfo naming it; a token review that is busy or failing to
// UNAVAILABLE (the plugin fails, the kubelet tries again at the next pull).
func exchangeStatus(ctx context.Context, log *slog.Logger, err error) error {
	var d *broker.DeniedError
	if !errors.As(err, &d) {
		if errors.Is(err, broker.ErrUnavailable) {
			return status.Error(codes.Unavailable, err.Error())
		}
		return toStatus(ctx, log, err, "")
	}
	code := codes.PermissionDenied
	switch d.Denial {
	case broker.DenyTokenRejected, broker.DenyTokenNotPodBound:
		code = codes.Unauthenticated
	case broker.DenyCredentialNotReady:
		code = codes.FailedPrecondition
	}
	reason := strings.TrimPrefix(exchangeDenials.proto(d.Denial).String(), "EXCHANGE_DENIAL_")
	st, derr := status.New(code, d.Msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain})
	if derr != nil {
		return status.Error(code, d.Msg)
	}
	return st.Err()
}
