package k8ssync

import (
	"context"
	"fmt"
	"slices"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TokenReviewer returns a function that asks the API server, with the
// TokenReview API, whether a bearer token is valid for audience and whose
// it is. A token issued for another audience is not accepted: a
// ServiceAccount token meant for some other service must not open
// credbroker.
func TokenReviewer(client kubernetes.Interface, audience string) func(ctx context.Context, token string) (string, []string, bool, error) {
	return func(ctx context.Context, token string) (string, []string, bool, error) {
		review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}}}
		res, err := client.AuthenticationV1().TokenReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return "", nil, false, fmt.Errorf("create TokenReview: %w", err)
		}
		st := res.Status
		if !st.Authenticated || !slices.Contains(st.Audiences, audience) {
			return "", nil, false, nil
		}
		return st.User.Username, st.User.Groups, true, nil
	}
}
