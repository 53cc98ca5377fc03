package admission

import (
	"strings"
	"testing"
)

// The guard credbroker applies names its own identity, the prefix and the
// writers it was given, each a CEL literal nobody can break out of.
func TestGuardFillsInWhoMayWriteWhat(t *testing.T) {
	guard, err := Guard(MarkGuardConfig{User: "system:serviceaccount:platform:cb", SelectorPrefix: "platform.example.com/",
		WriterUsers: []string{"system:serviceaccount:capsule-system:capsule"}, WriterGroups: []string{"system:masters", "platform-admins"}})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, v := range guard.Spec.Variables {
		vars[v.Name] = v.Expression
	}
	for name, want := range map[string]string{
		"prefix":       "'platform.example.com/'",
		"writerUsers":  "['system:serviceaccount:platform:cb', 'system:serviceaccount:capsule-system:capsule']",
		"writerGroups": "['system:masters', 'platform-admins']",
	} {
		if vars[name] != want {
			t.Errorf("variable %s is %s, want %s", name, vars[name], want)
		}
	}
	if strings.Contains(guard.Spec.MatchConditions[0].Expression, GuardUser) {
		t.Errorf("the guard still exempts %s", GuardUser)
	}
	if len(guard.Spec.Validations) != 2 {
		t.Errorf("%d validations, want the marks' and the prefix's", len(guard.Spec.Validations))
	}

	defaults, err := Guard(MarkGuardConfig{User: GuardUser})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range defaults.Spec.Variables {
		if v.Name == "prefix" && v.Expression != "'tenants.credbroker.io/'" {
			t.Errorf("the default prefix is %s", v.Expression)
		}
	}

	for name, cfg := range map[string]MarkGuardConfig{
		"a writer that breaks out of its literal": {User: GuardUser, WriterGroups: []string{"x'] || true || ['"}},
		"a prefix that is no domain":              {User: GuardUser, SelectorPrefix: "team"},
		"credbroker's own marks as the prefix":    {User: GuardUser, SelectorPrefix: "credbroker.io/"},
	} {
		if _, err := Guard(cfg); err == nil {
			t.Errorf("%s made a guard", name)
		}
	}
}
