package k8ssync

import (
	"context"
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
