package e2e

import (
	"bufio"
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/credbroker/credbroker/admission"
	"github.com/credbroker/credbroker/auth/authtest"
	"github.com/credbroker/credbroker/internal/testenv"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

const helmBinEnv = testenv.HelmBinEnv

// values a production install would set.
var chartValues = []string{
	"--set", "tls.secretName=credbroker-tls",
	"--set", "tls.clientCASecret.name=credbroker-client-ca",
	"--set", "github.appId=12345", "--set", "github.appKeySecret.name=credbroker-github",
	"--set", "github.webhookSecret.name=credbroker-github-webhook",
	"--set", "encryptionKeySecret.name=credbroker-encryption",
	"--set", "webhook.url=https://backend.platform.svc/credbroker", "--set", "webhook.secret.name=credbroker-webhook",
	"--set", "auth.tokenFileSecret.name=credbroker-tokens",
	"--set", "auth.policy.bindings[0].subject=system:serviceaccount:platform:backend",
	"--set", "auth.policy.bindings[0].roles[0]=admin",
	"--set", "publicImageScopes[0]=docker.io/istio",
	"--set", "registryTokenService.enabled=true", "--set", "registryTokenService.service=registry.platform.internal",
	"--set", "registryTokenService.keySecret.name=credbroker-registry-token",
	"--set", "registryTokenService.robotHost=registry.platform.internal:5000", "--set", "registryTokenService.robotKeySecret.name=credbroker-registry-robot",
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(os.Getenv(helmBinEnv), args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		err = errors.New(strings.TrimSpace(errOut.String() + "\n" + out.String()))
	}
	return out.String(), err
}

// decode splits rendered manifests into typed objects.
func decode(t *testing.T, manifests string) []any {
	t.Helper()
	var objs []any
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifests)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || bytes.Equal(bytes.TrimSpace(doc), []byte("---")) {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("rendered document does not decode: %v\n%s", err, doc)
		}
		objs = append(objs, obj)
	}
}

// grants renders every RBAC object as "kind namespace/name" → what it
// grants or binds, with the reference file's placeholder "granted" (a
// RoleBinding's namespace, a rule's resource name) standing for each of
// granted.
func grants(objs []any, granted []string) map[string]string {
	out := map[string]string{}
	for _, o := range objs {
		switch r := o.(type) {
		case *rbacv1.ClusterRole:
			for i, rule := range r.Rules {
				if slices.Equal(rule.ResourceNames, []string{"granted"}) {
					r.Rules[i].ResourceNames = granted
				}
			}
			out["ClusterRole "+r.Name] = fmt.Sprint(r.Rules)
		case *rbacv1.ClusterRoleBinding:
			out["ClusterRoleBinding "+r.Name] = fmt.Sprint(r.RoleRef, r.Subjects)
		case *rbacv1.Role:
			out["Role "+r.Namespace+"/"+r.Name] = fmt.Sprint(r.Rules)
		case *rbacv1.RoleBinding:
			namespaces := []string{r.Namespace}
			if r.Namespace == "granted" {
				namespaces = granted
			}
			for _, ns := range namespaces {
				out["RoleBinding "+ns+"/"+r.Name] = fmt.Sprint(r.RoleRef, r.Subjects)
			}
		}
	}
	return out
}

func TestHelmChart(t *testing.T) {
	testenv.Require(t, helmBinEnv, testenv.AssetsEnv)
	chart := "../charts/credbroker"
	if out, err := helm(t, append([]string{"lint", "--strict", chart}, chartValues...)...); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	if _, err := helm(t, "template", "credbroker", chart); err == nil || !strings.Contains(err.Error(), "set tls.secretName") {
		t.Errorf("rendering without TLS: %v, want a refusal naming tls.secretName", err)
	}
	// The chart grants what k8ssync/rbac.yaml (or, in namespaced mode,
	// rbac-namespaced.yaml) grants, which is what the integration tests run
	// the Syncer, the store and leader election as.
	granted := []string{"web", "api"}
	for _, mode := range []struct {
		reference string
		values    []string
	}{
		{"../k8ssync/rbac.yaml", nil},
		{"../k8ssync/rbac-namespaced.yaml", []string{"--set", "rbac.grantedNamespaces={" + strings.Join(granted, ",") + "}"}},
	} {
		// The nodes' grant is checked below: it is not credbroker's.
		manifests, err := helm(t, slices.Concat([]string{"template", "credbroker", chart, "--namespace", "credbroker", "--set", "credentialProvider.nodeRBAC=false"},
			chartValues, mode.values)...)
		if err != nil {
			t.Fatal(err)
		}
		reference, err := os.ReadFile(mode.reference)
		if err != nil {
			t.Fatal(err)
		}
		got, want := grants(decode(t, manifests), granted), grants(decode(t, string(reference)), granted)
		if !maps.Equal(got, want) {
			t.Errorf("chart RBAC differs from %s:\n chart %v\n  want %v", mode.reference, got, want)
		}
		if mode.values != nil && !strings.Contains(manifests, "- --granted-namespaces=web,api") {
			t.Errorf("namespaced mode: the Deployment lacks --granted-namespaces")
		}
	}
	// Nodes may request tokens for credbroker's audience, and nothing else.
	nodeManifests, err := helm(t, append([]string{"template", "credbroker", chart, "--namespace", "credbroker"}, chartValues...)...)
	if err != nil {
		t.Fatal(err)
	}
	nodeGrants := grants(decode(t, nodeManifests), granted)
	if got, want := nodeGrants["ClusterRole credbroker-node-token-audience"], fmt.Sprint([]rbacv1.PolicyRule{{Verbs: []string{"request-serviceaccounts-token-audience"},
		APIGroups: []string{""}, Resources: []string{"credbroker"}}}); got != want {
		t.Errorf("the nodes' ClusterRole grants %s, want %s", got, want)
	}
	if got := nodeGrants["ClusterRoleBinding credbroker-node-token-audience"]; !strings.Contains(got, "Group rbac.authorization.k8s.io system:nodes") || strings.Count(got, "{") != 2 {
		t.Errorf("the nodes' ClusterRoleBinding: %s, want the group system:nodes only", got)
	}
	// With the admission webhook too, whose CA the API server must get.
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: authtest.NewCA(t).Cert.Raw}))
	manifests, err := helm(t, append([]string{"template", "credbroker", chart, "--namespace", "credbroker",
		"--set", "admission.webhook.enabled=true", "--set-string", "admission.webhook.caBundle=" + caPEM}, chartValues...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, manifests)
	var policies []string
	for _, o := range objs {
		switch a := o.(type) {
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			policies = append(policies, a.Name)
			if a.Name == admission.GuardName && !strings.Contains(a.Spec.MatchConditions[0].Expression, "'system:serviceaccount:credbroker:credbroker'") {
				t.Errorf("the guard exempts %s, not the chart's ServiceAccount", a.Spec.MatchConditions[0].Expression)
			}
			if a.Name == admission.TokensName && !strings.Contains(a.Spec.MatchConditions[0].Expression, "'"+admission.ProviderAudience+"'") {
				t.Errorf("the provider tokens' policy matches %s, not the chart's credentialProvider.audience", a.Spec.MatchConditions[0].Expression)
			}
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			policies = append(policies, a.Name+" "+fmt.Sprint(a.Spec.ValidationActions))
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			hook := a.Webhooks[0]
			policies = append(policies, "webhook "+string(*hook.FailurePolicy))
			if svc := hook.ClientConfig.Service; svc == nil || *svc.Path != admission.WebhookPath || string(hook.ClientConfig.CABundle) != caPEM {
				t.Errorf("the webhook is called at %+v with CA %q", svc, hook.ClientConfig.CABundle)
			}
		}
	}
	slices.Sort(policies)
	if want := []string{admission.PolicyName, admission.PolicyName + " [Deny]", admission.GuardName, admission.GuardName + " [Deny]",
		admission.TokensName, admission.TokensName + " [Deny]", "webhook Fail"}; !slices.Equal(policies, want) {
		t.Errorf("admission objects %q, want %q", policies, want)
	}

	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, reflect.TypeOf(o).Elem().Name())
		if d, ok := o.(interface{ GetName() string }); ok && d.GetName() == "" {
			t.Errorf("a %T without a name", o)
		}
	}
	t.Logf("rendered: %v", kinds)
	for _, o := range objs {
		if pod := podSpecOf(o); pod != nil {
			c := pod.Containers[0]
			sc := c.SecurityContext
			if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
				sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("the credbroker container is not locked down: %+v %+v", pod.SecurityContext, sc)
			}
			args := strings.Join(c.Args, " ")
			for _, want := range []string{"--store=kubernetes", "--leader-elect=true", "--tls-cert-file=", "--auth-token-file=", "--auth-policy-file=", "--webhook-url=",
				"--mark-namespaces=true", "--admission-webhook", "--public-image-scopes=docker.io/istio",
				"--registry-token-service=registry.platform.internal", "--registry-token-key-files=/etc/credbroker/registry-token/current.pem",
				"--registry-robot-host=registry.platform.internal:5000", "--registry-robot-key-file=/etc/credbroker/registry-robot/robot.key"} {
				if !strings.Contains(args, want) {
					t.Errorf("args %q lack %s", args, want)
				}
			}
		}
	}

	// The API server accepts every object (server-side dry run).
	kcFile := testenv.Cluster(t, "credbroker").Kubeconfig(t, "credbroker-e2e")
	apply := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), "--kubeconfig", kcFile, "apply", "--dry-run=server", "-f", "-")
	apply.Stdin = strings.NewReader(manifests)
	out, err := apply.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, out)
	}
	accepted := strings.Count(string(out), "(server dry run)")
	t.Logf("kubectl apply --dry-run=server accepted %d objects", accepted)
	if accepted != len(objs) {
		t.Errorf("%d of %d objects accepted:\n%s", accepted, len(objs), out)
	}

	// The optional ServiceMonitor renders when asked for (its CRD is not in
	// a bare API server, so it is not applied).
	withMonitor, err := helm(t, append([]string{"template", "credbroker", chart, "--set", "serviceMonitor.enabled=true"}, chartValues...)...)
	if err != nil || !strings.Contains(withMonitor, "kind: ServiceMonitor") {
		t.Errorf("serviceMonitor.enabled: %v", err)
	}
}

func podSpecOf(o any) *corev1.PodSpec {
	if d, ok := o.(*appsv1.Deployment); ok {
		return &d.Spec.Template.Spec
	}
	return nil
}
