package admission

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestTheChartShipsThesePolicies(t *testing.T) {
	for file, want := range map[string][]byte{
		"../charts/credbroker/files/admission-policy.yaml": PolicyYAML,
		"../charts/credbroker/files/admission-guard.yaml":  GuardYAML,
		"../charts/credbroker/files/admission-tokens.yaml": TokensYAML,
	} {
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the policy credbroker applies: run make generate", file)
		}
	}
}

func TestPoliciesDecode(t *testing.T) {
	policy, err := Policy("registry-credentials")
	if err != nil {
		t.Fatal(err)
	}
	if policy.Name != PolicyName || len(policy.Spec.Validations) != 2 {
		t.Errorf("policy %s with %d validations", policy.Name, len(policy.Spec.Validations))
	}
	var tokens string
	for _, v := range policy.Spec.Variables {
		if v.Name == "providerTokens" {
			tokens = v.Expression
		}
	}
	if !strings.Contains(tokens, "== 'registry-credentials'") || strings.Contains(tokens, "'"+ProviderAudience+"'") {
		t.Errorf("the policy refuses tokens by %s", tokens)
	}
	if _, err := Policy("x'||true||'"); err == nil {
		t.Error("an audience that breaks out of its literal made a policy")
	}
	requests, err := Tokens("registry-credentials")
	if err != nil {
		t.Fatal(err)
	}
	if cond := requests.Spec.MatchConditions[0].Expression; requests.Name != TokensName || !strings.Contains(cond, "== 'registry-credentials'") || strings.Contains(cond, "'"+ProviderAudience+"'") {
		t.Errorf("the provider tokens' policy %s matches %s", requests.Name, cond)
	}
	if _, err := Tokens("x'||true||'"); err == nil {
		t.Error("an audience that breaks out of its literal made a tokens policy")
	}
	guard, err := Guard(MarkGuardConfig{User: "system:serviceaccount:platform:cb"})
	if err != nil {
		t.Fatal(err)
	}
	if cond := guard.Spec.MatchConditions[0].Expression; !strings.Contains(cond, "'system:serviceaccount:platform:cb'") || strings.Contains(cond, GuardUser) {
		t.Errorf("the guard exempts %s", cond)
	}
	for _, user := range []string{"", "x' || true || '"} {
		if _, err := Guard(MarkGuardConfig{User: user}); err == nil {
			t.Errorf("Guard(%q) made a policy", user)
		}
	}
}

func TestBindings(t *testing.T) {
	for _, tc := range []struct {
		mode Mode
		want string
	}{
		{Enforce, "[Deny]"},
		{DryRun, "[Warn Audit]"},
	} {
		bindings, err := Bindings(tc.mode)
		if err != nil {
			t.Fatal(err)
		}
		images, guard := bindings[0], bindings[1]
		if got := fmt.Sprint(images.Spec.ValidationActions); got != tc.want {
			t.Errorf("%s: the image policy's actions %s, want %s", tc.mode, got, tc.want)
		}
		if fmt.Sprint(guard.Spec.ValidationActions) != "[Deny]" || guard.Spec.PolicyName != GuardName {
			t.Errorf("%s: the guard binding %+v", tc.mode, guard.Spec)
		}
		if sel := images.Spec.MatchResources.NamespaceSelector.MatchExpressions; len(sel) != 1 || sel[0].Key != LabelTenant {
			t.Errorf("the image policy binds %+v", sel)
		}
	}
	bindings, err := Bindings(DryRun)
	if err != nil {
		t.Fatal(err)
	}
	if tokens := bindings[2]; tokens.Spec.PolicyName != TokensName || fmt.Sprint(tokens.Spec.ValidationActions) != "[Warn Audit]" ||
		tokens.Spec.MatchResources.NamespaceSelector.MatchExpressions[0].Key != LabelTenant {
		t.Errorf("the provider tokens' binding %+v", tokens.Spec)
	}
	if _, err := Bindings("audit"); err == nil {
		t.Error("an unknown mode made bindings")
	}
}
