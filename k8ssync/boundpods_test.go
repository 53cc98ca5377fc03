package k8ssync

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/credbroker/credbroker/auth"
	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/internal/testenv"
	"github.com/credbroker/credbroker/registrytoken"
)

// pushers binds every namespace to a tenant of acme that may push.
type pushers struct{}

func (pushers) NamespaceOwner(string) (broker.Tenant, bool, error) {
	return broker.Tenant{ID: "acme", Owner: broker.Owner{Login: "acme", ID: 1}, RegistryPush: true}, true, nil
}

// TestARefreshTokenDiesWithItsBuilderPod plays a build job's leftover
// refresh token against the registry token service wired as the binary
// wires it (TokenReview and BoundPods on the real API server, as the
// credbroker ServiceAccount of rbac.yaml): once the builder Pod or its
// ServiceAccount is deleted, or the Pod's name is taken by another Pod, a
// refresh is refused with 400 invalid_grant, though the refresh token has
// not expired.
func TestARefreshTokenDiesWithItsBuilderPod(t *testing.T) {
	requireCluster(t)
	ctx := context.Background()
	client, err := kubernetes.NewForConfig(brokerCfg)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := registrytoken.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktesting.NewFakePassiveClock(time.Now())
	svc, err := registrytoken.New(registrytoken.Config{Service: "reg", Issuer: "credbroker", BoundPods: BoundPods{Client: client}, Clock: clk}, keys,
		auth.NewPodTokens(TokenReviewer(client, "credbroker-registry"), auth.TokenChecks{}), pushers{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	post := func(form url.Values) (int, map[string]any) {
		form.Set("service", "reg")
		form.Set("client_id", "crane")
		form.Set("access_type", "offline")
		form.Set("scope", "repository:acme/app:pull,push")
		req := httptest.NewRequest(http.MethodPost, registrytoken.TokenPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		svc.Handler().ServeHTTP(rec, req)
		var m map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &m)
		return rec.Code, m
	}
	refresh := func(rt string) (int, map[string]any) {
		return post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	tests := []struct {
		name   string
		attack func(t *testing.T, pod *corev1.Pod)
	}{
		{"the builder Pod deleted", func(t *testing.T, pod *corev1.Pod) {
			if err := admin.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"its ServiceAccount deleted, the Pod left", func(t *testing.T, pod *corev1.Pod) {
			if err := admin.CoreV1().ServiceAccounts(pod.Namespace).Delete(ctx, pod.Spec.ServiceAccountName, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"the Pod and its ServiceAccount deleted", func(t *testing.T, pod *corev1.Pod) {
			if err := admin.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := admin.CoreV1().ServiceAccounts(pod.Namespace).Delete(ctx, pod.Spec.ServiceAccountName, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"the Pod deleted and another made under its name", func(t *testing.T, pod *corev1.Pod) {
			if err := admin.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.CoreV1().Pods(pod.Namespace).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod.Name}, Spec: pod.Spec},
				metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := unique("builds")
			createNamespace(t, ns, nil)
			pod := testenv.PodOfServiceAccount(t, admin, ns, "builder", "builder-0")
			code, m := post(url.Values{"grant_type": {"password"}, "username": {"serviceaccount"},
				"password": {testenv.ServiceAccountToken(t, admin, pod, "credbroker-registry", true)}})
			rt, _ := m["refresh_token"].(string)
			if code != http.StatusOK || rt == "" || m["scope"] != "repository:acme/app:pull,push" {
				t.Fatalf("the builder's password grant: %d %v", code, m)
			}
			if code, m := refresh(rt); code != http.StatusOK || m["scope"] != "repository:acme/app:pull,push" {
				t.Fatalf("a refresh while the builder runs: %d %v", code, m)
			}
			tc.attack(t, pod)
			clk.SetTime(clk.Now().Add(registrytoken.PodCheckTTL + time.Second)) // the answer kept from the refresh above is stale
			if code, m := refresh(rt); code != http.StatusBadRequest || m["error"] != "invalid_grant" {
				t.Errorf("a refresh after %s: %d %v, want 400 invalid_grant", tc.name, code, m)
			}
		})
	}
}
