package registrytoken

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/distribution/reference"

	"github.com/credbroker/credbroker/broker"
)

// Owner prefixes: where a tenant owner's repositories are in the
// in-cluster registry.
const (
	// DefaultOwnerPrefix keys them by the owner's login, as ghcr.io does:
	// what images were named before owner prefixes existed.
	DefaultOwnerPrefix = "{login}/"
	// IDOwnerPrefix keys them by the owner's numeric GitHub id, which a
	// rename keeps and nobody else ever gets: after an organization is
	// renamed, whoever registers its old login gets nothing of its
	// repositories, and the renamed owner keeps them.
	IDOwnerPrefix = "github.{id}/"
)

// checkOwnerPrefix refuses a template that names no owner, or keyed by id
// alone whose first component a GitHub login could take (logins are
// letters, digits and '-'): on a registry that was keyed by login, "{id}/"
// would hand what the login "1234" pushed to the account of id 1234.
func checkOwnerPrefix(template, namespaceTemplate string) error {
	hasLogin, hasID := strings.Contains(template, "{login}"), strings.Contains(template, "{id}")
	if (!hasLogin && !hasID) || !strings.HasSuffix(template, "/") {
		return fmt.Errorf("registry owner prefix %q: want a path ending in '/' with {login} or {id} in it (%q, or %q to survive renames)",
			template, DefaultOwnerPrefix, IDOwnerPrefix)
	}
	first, _, _ := strings.Cut(template, "/")
	if !hasLogin && !strings.ContainsAny(first, "._") {
		return fmt.Errorf("registry owner prefix %q: its first component %q could be a GitHub login; put a '.' or '_' in it", template, first)
	}
	example := strings.NewReplacer("{login}", "acme", "{id}", "1").Replace(template)
	if _, err := reference.ParseNamed("registry.invalid/" + example + "x"); err != nil {
		return fmt.Errorf("registry owner prefix %q: not a repository path: %w", template, err)
	}
	fixed, _, _ := strings.Cut(namespaceTemplate, "{namespace}")
	if ownerFixed, _, _ := strings.Cut(strings.ReplaceAll(template, "{id}", "{login}"), "{login}"); fixed != "" &&
		(strings.HasPrefix(ownerFixed, fixed) || (ownerFixed != "" && strings.HasPrefix(fixed, ownerFixed))) {
		return fmt.Errorf("registry owner prefix %q: it overlaps the namespaces' prefix %q", template, namespaceTemplate)
	}
	return nil
}

// ownerPrefix is where owner's repositories are; "" when the template
// needs an id the owner lacks (a granted owner, known by login only).
func (s *Service) ownerPrefix(owner broker.Owner) string {
	if strings.Contains(s.cfg.OwnerPrefix, "{id}") && owner.ID == 0 {
		return ""
	}
	if strings.Contains(s.cfg.OwnerPrefix, "{login}") && owner.Login == "" {
		return ""
	}
	return strings.NewReplacer("{login}", strings.ToLower(owner.Login), "{id}", strconv.FormatInt(owner.ID, 10)).Replace(s.cfg.OwnerPrefix)
}
