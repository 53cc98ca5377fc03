package k8ssync

import (
	"context"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// A ServiceAccount token the API server issued is reviewed by the API
// server, as the credbroker ServiceAccount (rbac.yaml grants it
// tokenreviews), for credbroker's audience only.
func TestTokenReviewerAcceptsServiceAccountTokensForItsAudience(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	ns := unique("callers")
	createNamespace(t, ns, nil)
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "backend"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	issue := func(audience string) string {
		t.Helper()
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "backend", &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	client, err := kubernetes.NewForConfig(brokerCfg)
	if err != nil {
		t.Fatal(err)
	}
	review := TokenReviewer(client, "credbroker")
	tests := []struct {
		name     string
		token    string
		wantOK   bool
		wantUser string
	}{
		{"a token for credbroker", issue("credbroker"), true, "system:serviceaccount:" + ns + ":backend"},
		{"a token for another audience", issue("vault"), false, ""},
		{"garbage", "not-a-token", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rev, err := review(ctx, tc.token)
			if err != nil {
				t.Fatal(err)
			}
			if rev.Authenticated != tc.wantOK || rev.User != tc.wantUser {
				t.Errorf("review: %+v", rev)
			}
		})
	}
}
