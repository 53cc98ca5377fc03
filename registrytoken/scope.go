package registrytoken

import (
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
)

// ResourceAccess is what a token grants on one resource, as the registry
// reads it from the token's "access" claim.
type ResourceAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// parseScopes reads scopes as the token specification writes them,
// "type:name:action[,action]"; several in one value are separated by
// spaces (OAuth2's form). The name may hold colons (a registry:catalog:*
// scope has none, a repository name no more than a tag would), so the type
// is what comes before the first colon and the actions what comes after
// the last.
func parseScopes(values []string) ([]ResourceAccess, error) {
	var out []ResourceAccess
	for _, value := range values {
		for _, s := range strings.Fields(value) {
			typ, rest, ok := strings.Cut(s, ":")
			i := strings.LastIndexByte(rest, ':')
			if !ok || i <= 0 || typ == "" {
				return nil, fmt.Errorf("scope %q: want type:name:actions", s)
			}
			name, actions := rest[:i], strings.Split(rest[i+1:], ",")
			if slices.Contains(actions, "") {
				return nil, fmt.Errorf("scope %q: an empty action", s)
			}
			if typ == "repository" {
				if _, err := reference.ParseNamed("registry.invalid/" + name); err != nil {
					return nil, fmt.Errorf("scope %q: %q is not a repository name", s, name)
				}
			}
			out = append(out, ResourceAccess{Type: typ, Name: name, Actions: actions})
		}
	}
	return out, nil
}

// String is the scope as the token specification writes it.
func (a ResourceAccess) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// ParsePublicPrefix reads one of --registry-public-prefixes: a repository
// path of whole components, with or without its trailing '/'. It is
// returned with the '/', which is how it matches: "platform" covers
// platform/app and platform/team/app, never platformx/private-app. A
// string match on "platform" gave anonymous pulls of every repository
// whose name merely began with it.
func ParsePublicPrefix(prefix string) (string, error) {
	path := strings.TrimSuffix(prefix, "/")
	named, err := reference.ParseNamed("registry.invalid/" + path)
	if path == "" || err != nil || !reference.IsNameOnly(named) || reference.Path(named) != path {
		return "", fmt.Errorf("registry public prefix %q: want a repository path of whole components, lowercase, such as \"platform/\" or \"platform/base/\"", prefix)
	}
	return path + "/", nil
}

// under reports whether the repository name is at or below one of the
// prefixes, each a path ending in '/': whole components only.
func under(name string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name+"/", p) })
}
