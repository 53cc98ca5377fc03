package admission

import (
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/credbroker/credbroker/broker"
)

// MarkGuardConfig is who the guard policy (guard.yaml) lets write what.
type MarkGuardConfig struct {
	// User is credbroker's own identity at the API server, the one that may
	// write its marks (and, like every writer, the labels under the prefix).
	User string
	// SelectorPrefix is the platform-owned label key prefix tenants'
	// selectors must use (broker.NamespaceScope.SelectorPrefix);
	// broker.DefaultSelectorPrefix when empty.
	SelectorPrefix string
	// WriterUsers and WriterGroups may set, change and remove labels under
	// the prefix: the platform's identities (cluster admins, a namespace
	// provisioner). User is always one.
	WriterUsers, WriterGroups []string
}

// The guard's variables that GuardConfig fills in, each replaced whole.
const (
	guardPrefixVar       = "prefix"
	guardWriterUsersVar  = "writerUsers"
	guardWriterGroupsVar = "writerGroups"
)

// Guard returns the policy that keeps namespace marks credbroker's and the
// labels under the selector prefix the platform's.
func Guard(cfg MarkGuardConfig) (*admissionregistrationv1.ValidatingAdmissionPolicy, error) {
	if err := literal("credbroker's user name", cfg.User); err != nil {
		return nil, err
	}
	if cfg.SelectorPrefix == "" {
		cfg.SelectorPrefix = broker.DefaultSelectorPrefix
	}
	if err := broker.CheckSelectorPrefix(cfg.SelectorPrefix); err != nil {
		return nil, fmt.Errorf("admission policy: namespace label prefix %w", err)
	}
	users := append([]string{cfg.User}, cfg.WriterUsers...)
	users, groups := slices.Compact(users), cfg.WriterGroups
	for _, name := range append(slices.Clone(users), groups...) {
		if err := literal("a namespace label writer", name); err != nil {
			return nil, err
		}
	}
	p, err := decode(GuardYAML)
	if err != nil {
		return nil, err
	}
	p.Spec.MatchConditions[0].Expression = strings.ReplaceAll(p.Spec.MatchConditions[0].Expression, GuardUser, cfg.User)
	set := map[string]string{
		guardPrefixVar:       quote(cfg.SelectorPrefix),
		guardWriterUsersVar:  celList(users),
		guardWriterGroupsVar: celList(groups),
	}
	for i, v := range p.Spec.Variables {
		if e, ok := set[v.Name]; ok {
			p.Spec.Variables[i].Expression = e
			delete(set, v.Name)
		}
	}
	if len(set) > 0 {
		return nil, fmt.Errorf("admission policy: guard.yaml lacks the variables %v", set)
	}
	return p, nil
}

// quote makes a CEL string literal of a value literal accepted.
func quote(v string) string { return "'" + v + "'" }

func celList(items []string) string {
	quoted := make([]string, len(items))
	for i, v := range items {
		quoted[i] = quote(v)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}
