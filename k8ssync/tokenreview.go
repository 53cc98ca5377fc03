package k8ssync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/credbroker/credbroker/auth"
)

// TokenReviewer returns a function that asks the API server, with the
// TokenReview API, whether a bearer token is valid for audience and whose
// it is. A token issued for another audience is not accepted: a
// ServiceAccount token meant for some other service must not open
// credbroker.
func TokenReviewer(client kubernetes.Interface, audience string) auth.ReviewFunc {
	return func(ctx context.Context, token string) (auth.Review, error) {
		review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}}}
		res, err := client.AuthenticationV1().TokenReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return auth.Review{}, fmt.Errorf("create TokenReview: %w", err)
		}
		st := res.Status
		if !st.Authenticated || !slices.Contains(st.Audiences, audience) {
			return auth.Review{}, nil
		}
		extra := make(map[string][]string, len(st.User.Extra))
		for k, v := range st.User.Extra {
			extra[k] = v
		}
		return auth.Review{Authenticated: true, User: st.User.Username, Groups: st.User.Groups, Extra: extra}, nil
	}
}

// The paths where the API server publishes its ServiceAccount issuer
// (ServiceAccountIssuerDiscovery): the default ClusterRole
// system:service-account-issuer-discovery lets every ServiceAccount read
// them, and rbac.yaml grants them to credbroker by name.
const (
	discoveryPath = "/.well-known/openid-configuration"
	jwksPath      = "/openid/v1/jwks"
)

// ServiceAccountIssuer returns a source of the cluster's ServiceAccount
// issuer and keys, read from the API server (not from the discovery
// document's jwks_uri, which may name a host credbroker cannot reach).
func ServiceAccountIssuer(client kubernetes.Interface) auth.IssuerSource {
	return func(ctx context.Context) (auth.Issuer, error) {
		rest := client.Discovery().RESTClient()
		if rest == nil {
			return auth.Issuer{}, errors.New("no REST client to ask the API server for its ServiceAccount issuer")
		}
		raw, err := rest.Get().AbsPath(discoveryPath).DoRaw(ctx)
		if err != nil {
			return auth.Issuer{}, fmt.Errorf("GET %s: %w", discoveryPath, err)
		}
		var doc struct {
			Issuer string `json:"issuer"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return auth.Issuer{}, fmt.Errorf("GET %s: %w", discoveryPath, err)
		}
		jwks, err := rest.Get().AbsPath(jwksPath).DoRaw(ctx)
		if err != nil {
			return auth.Issuer{}, fmt.Errorf("GET %s: %w", jwksPath, err)
		}
		return auth.Issuer{URL: doc.Issuer, JWKS: jwks}, nil
	}
}
