package broker

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/selection"

	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// FieldViolation names one invalid field of a request and says what is wrong.
// Field is a path of proto field names relative to the tenant, such as
// "owner.login" or "namespaces[2]".
type FieldViolation struct {
	Field       string
	Description string
}

// InvalidError is returned for input that can never succeed as sent. The API
// layer turns it into InvalidArgument with a BadRequest detail per violation.
type InvalidError struct {
	Violations []FieldViolation
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Description
	}
	return "invalid tenant: " + strings.Join(parts, "; ")
}

// violations collects FieldViolations; its zero value is ready to use.
type violations []FieldViolation

func (vs *violations) add(field, format string, args ...any) {
	*vs = append(*vs, FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (vs violations) err() error {
	if len(vs) == 0 {
		return nil
	}
	return &InvalidError{Violations: vs}
}

var (
	// GitHub's login rule: alphanumerics and single inner hyphens, at most 39.
	githubLogin = regexp.MustCompile(`^[A-Za-z0-9](?:-?[A-Za-z0-9])*$`)
	// GitHub's repository name rule.
	githubRepo = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
	// GitHub App permission names, e.g. "packages", "pull_requests".
	permissionName = regexp.MustCompile(`^[a-z][a-z_]*$`)
)

const maxLoginLength = 39

func validLogin(login string) bool {
	return len(login) <= maxLoginLength && githubLogin.MatchString(login)
}

// validate checks every field of a tenant that already has its defaults and
// reports all problems at once, so a caller can fix a request in one go.
// requireToken is true when the request must carry a PAT in plaintext.
func (t Tenant) validate(requireToken bool) error {
	var vs violations
	if t.ID == "" {
		vs.add("id", "required")
	} else if errs := validation.IsDNS1123Label(t.ID); len(errs) > 0 {
		vs.add("id", "must be a DNS-1123 label (it becomes a label value): %s", strings.Join(errs, "; "))
	}

	switch {
	case t.Owner.Login == "":
		vs.add("owner.login", "required")
	case !validLogin(t.Owner.Login):
		vs.add("owner.login", "%q is not a GitHub login (letters, digits and single inner hyphens, at most 39)", t.Owner.Login)
	}
	if t.Owner.ID <= 0 {
		vs.add("owner.id", "required: the account's numeric GitHub id")
	}
	if t.Owner.Type != OwnerUser && t.Owner.Type != OwnerOrganization {
		vs.add("owner.type", "required: OWNER_TYPE_USER or OWNER_TYPE_ORGANIZATION")
	}

	switch {
	case t.App != nil && t.PAT != nil:
		vs.add("credential", "set either github_app or pat, not both")
	case t.App != nil:
		validateApp(&vs, *t.App)
	case t.PAT != nil:
		validatePAT(&vs, *t.PAT, requireToken)
	default:
		vs.add("credential", "required: github_app or pat")
	}

	validateUnique(&vs, "namespaces", t.Namespaces, func(ns string) string {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Sprintf("%q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		return ""
	})
	if t.NamespaceSelector != "" {
		if sel, err := labels.Parse(t.NamespaceSelector); err != nil {
			vs.add("namespace_selector", "not a label selector: %v", err)
		} else if problem := selectorProblem(sel); problem != "" {
			vs.add("namespace_selector", "%s", problem)
		}
	}
	validateUnique(&vs, "registries", t.Registries, func(host string) string {
		if !validRegistryHost(host) {
			return fmt.Sprintf("%q is not a registry host (lowercase host name with optional :port)", host)
		}
		return ""
	})
	if errs := validation.IsDNS1123Subdomain(t.SecretName); len(errs) > 0 {
		vs.add("secret_name", "%q is not a Secret name: %s", t.SecretName, strings.Join(errs, "; "))
	} else if strings.HasPrefix(t.SecretName, ReservedSecretPrefix) {
		vs.add("secret_name", "names starting with %q are credbroker's own", ReservedSecretPrefix)
	}
	validateUnique(&vs, "allowed_owners", t.AllowedOwners, func(login string) string {
		switch {
		case !validLogin(login):
			return fmt.Sprintf("%q is not a GitHub login", login)
		case strings.EqualFold(login, t.Owner.Login):
			return "the tenant's own owner is always allowed; do not list it"
		}
		return ""
	})
	switch t.PullMode {
	case PullSecret, PullProvider, PullBoth:
	default:
		vs.add("pull_mode", "%q is not a pull mode: SECRET, PROVIDER or BOTH", t.PullMode)
	}
	// The probe image proves a pull the tenant's workloads will make: it
	// must be an image the tenant may run.
	if t.ProbeImage != "" {
		if v := ValidateImage(t, t.ProbeImage); !v.Allowed {
			vs.add("probe_image", "%s", v.Message)
		}
	}
	return vs.err()
}

func validateApp(vs *violations, app GitHubApp) {
	if app.InstallationID <= 0 {
		vs.add("github_app.installation_id", "required: the App installation's numeric id")
	}
	for name, level := range app.Permissions {
		if !permissionName.MatchString(name) {
			vs.add("github_app.permissions", "%q is not a GitHub App permission name", name)
		}
		if level != "read" && level != "write" && level != "admin" {
			vs.add("github_app.permissions", "%s: level %q must be read, write or admin", name, level)
		}
	}
	validateUnique(vs, "github_app.repositories", app.Repositories, func(repo string) string {
		if !githubRepo.MatchString(repo) || repo == "." || repo == ".." {
			return fmt.Sprintf("%q is not a repository name", repo)
		}
		return ""
	})
}

// validatePAT never quotes the token in a description: descriptions reach
// clients and logs.
func validatePAT(vs *violations, pat PAT, requireToken bool) {
	switch {
	case pat.Token == "" && requireToken:
		vs.add("pat.token", "required")
	case pat.Token == "":
	case strings.HasPrefix(pat.Token, "github_pat_"):
		vs.add("pat.token", "is a fine-grained PAT; GitHub Packages accepts only classic PATs with read:packages")
	case len(pat.Token) > 255 || strings.ContainsFunc(pat.Token, func(r rune) bool { return r <= ' ' || r > '~' }):
		vs.add("pat.token", "is not a GitHub token (printable ASCII without spaces, at most 255 characters)")
	}
}

// validateUnique checks each element with problem (which returns "" for a
// good one) and rejects duplicates, naming the element by its index.
func validateUnique(vs *violations, field string, items []string, problem func(string) string) {
	seen := make(map[string]bool, len(items))
	for i, item := range items {
		name := fmt.Sprintf("%s[%d]", field, i)
		if msg := problem(item); msg != "" {
			vs.add(name, "%s", msg)
			continue
		}
		key := strings.ToLower(item)
		if seen[key] {
			vs.add(name, "%q is listed twice", item)
		}
		seen[key] = true
	}
}

// validRegistryHost accepts what the distribution reference grammar accepts
// as the domain of an image name, lowercase.
func validRegistryHost(host string) bool {
	if host == "" || host != strings.ToLower(host) {
		return false
	}
	named, err := reference.ParseNamed(host + "/probe/probe") // two components: docker.io adds library/ before one
	return err == nil && reference.Domain(named) == host
}

func SlicesContainsFold(items []string, s string) bool {
	for _, item := range items {
		if strings.EqualFold(item, s) {
			return true
		}
	}
	return false
}

// LabelPrefix begins every label and annotation credbroker writes.
const LabelPrefix = "credbroker.io/"

// selectorProblem says why a namespace selector may not be a tenant's, or
// "". A selector must name namespaces by a label someone gave them: at
// least one positive requirement (=, ==, in), since "!x" or "x!=y" match
// nearly every namespace of the cluster, and none on the name label, which
// every namespace has and which would make a selector a list in disguise.
func selectorProblem(sel labels.Selector) string {
	const nameLabel = "kubernetes.io/metadata.name" // set on every namespace by the API server
	reqs, _ := sel.Requirements()
	positive := false
	for _, r := range reqs {
		if r.Key() == nameLabel {
			return nameLabel + " names namespaces one by one: list them in namespaces instead"
		}
		if strings.HasPrefix(r.Key(), LabelPrefix) {
			return "labels under " + LabelPrefix + " are credbroker's marks of namespaces it already bound: a selector on them would claim another tenant's namespaces"
		}
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			positive = true
		}
	}
	if !positive {
		return "must hold at least one positive requirement (label=value or label in (...)): a selector without one matches nearly every namespace"
	}
	return ""
}
