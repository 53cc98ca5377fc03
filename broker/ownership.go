package broker

import (
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
)

// ImageReason is why an image was allowed or denied; the values are the
// API's ImageReason names without the IMAGE_REASON_ prefix.
type ImageReason string

// Image reasons.
const (
	ImageAllowed           ImageReason = "ALLOWED"
	ImageInvalidReference  ImageReason = "INVALID_REFERENCE"
	ImageImplicitDockerHub ImageReason = "IMPLICIT_DOCKER_HUB"
	ImageWrongRegistry     ImageReason = "WRONG_REGISTRY"
	ImageWrongOwner        ImageReason = "WRONG_OWNER"
)

// Verdict is the answer to "may this tenant run this image?".
type Verdict struct {
	Allowed bool
	Reason  ImageReason
	Message string
}

func deny(reason ImageReason, format string, args ...any) Verdict {
	return Verdict{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// ValidateImage decides whether t may run image: only an image on one of
// the tenant's registries whose first path component is the tenant's owner
// (or an owner it is granted). Tags and digests are both fine.
//
// The registry must be named: a reference without one ("acme/app") is
// pulled from Docker Hub, and is denied as IMPLICIT_DOCKER_HUB even for a
// tenant that lists docker.io, so that the registry is always explicit. The
// host is compared exactly (case aside): "ghcr.io:443" is not "ghcr.io" to
// the kubelet's credential lookup either.
func ValidateImage(t Tenant, image string) Verdict {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return deny(ImageInvalidReference, "%q is not an image reference: %v", image, err)
	}
	// Docker's rule: the first component is a registry host only if it has a
	// '.' or ':' or is "localhost", and more components follow.
	first, _, hasRest := strings.Cut(image, "/")
	if !hasRest || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		return deny(ImageImplicitDockerHub, "%q names no registry and would be pulled from Docker Hub; write the registry, e.g. %s/%s/…", image, t.registryHint(), t.Owner.Login)
	}
	domain := reference.Domain(named)
	c, static := t.RegistryCredential(domain)
	static = static && len(c.Owners) > 0
	if !static && !SlicesContainsFold(t.Registries, domain) {
		return deny(ImageWrongRegistry, "registry %s is not one of the tenant's registries %v", domain, t.Registries)
	}
	owner, _, hasName := strings.Cut(reference.Path(named), "/")
	switch {
	case !hasName:
		return deny(ImageInvalidReference, "%q names no owner: images are <registry>/<owner>/<name>", image)
	case static && !slices.Contains(c.Owners, owner):
		return deny(ImageWrongOwner, "%s is not under %v, where the tenant's credential for %s may run images", image, c.Owners, domain)
	case static:
		return Verdict{Allowed: true, Reason: ImageAllowed, Message: fmt.Sprintf("%s is under %s/%s, a registry the tenant has a credential for", image, domain, owner)}
	}
	if !strings.EqualFold(owner, t.Owner.Login) && !SlicesContainsFold(t.AllowedOwners, owner) {
		return deny(ImageWrongOwner, "%s belongs to %s, not to %s or an owner the tenant is granted", image, owner, t.Owner.Login)
	}
	return Verdict{Allowed: true, Reason: ImageAllowed, Message: fmt.Sprintf("%s is %s's image on %s", image, owner, domain)}
}

// ImageRules are the platform's part of image ownership. The zero value
// allows each tenant its own scopes only.
type ImageRules struct {
	// Public are "<registry>/<owner>" scopes every tenant may run images
	// from: the platform's base images, a mesh's sidecars. The tenants'
	// credentials are never handed out for them.
	Public []string
	// Mirrors serve other registries' images; an image through a mirror is
	// judged as the upstream image it stands for.
	Mirrors []Mirror
	// InCluster is the in-cluster registry credbroker's token service
	// guards, if any: a namespace's Pods may run the images the service
	// lets them pull (ValidateIn).
	InCluster InClusterRegistry
}

// InClusterRegistry is the in-cluster registry behind credbroker's
// registry token service (docs/registry-token-service.md), as admission
// sees it: a Pod of a namespace may run what the service lets that
// namespace pull there, and no more.
type InClusterRegistry struct {
	// Host is the registry as Pods name it (--registry-robot-host); no
	// in-cluster registry when empty.
	Host string
	// NamespacePrefix is where a namespace's own repositories are, with
	// "{namespace}" for its name (--registry-namespace-prefix,
	// "cluster.local/{namespace}/").
	NamespacePrefix string
	// PublicPrefixes are repository prefixes anyone may pull
	// (--registry-public-prefixes, "platform/").
	PublicPrefixes []string
}

// scopes are the in-cluster registry's scopes of t's namespace: its
// tenant's owner and granted owners, the namespace's own prefix, and the
// public prefixes, each "<host>/<path>" without the trailing '/', so that
// a scope matches whole path components only ("<host>/platform" is not a
// prefix of "<host>/platformx/app"). The second list is the public ones.
func (c InClusterRegistry) scopes(t Tenant, namespace string) (all, public []string) {
	if c.Host == "" || namespace == "" {
		return nil, nil
	}
	host := strings.ToLower(c.Host) + "/"
	scope := func(prefix string) string { return host + strings.Trim(prefix, "/") }
	for _, owner := range append([]string{t.Owner.Login}, t.AllowedOwners...) {
		all = append(all, scope(strings.ToLower(owner)))
	}
	if c.NamespacePrefix != "" {
		all = append(all, scope(strings.ReplaceAll(c.NamespacePrefix, "{namespace}", namespace)))
	}
	for _, p := range c.PublicPrefixes {
		if strings.Trim(p, "/") != "" {
			public = append(public, scope(p))
		}
	}
	return append(all, public...), public
}

// NewImageRules parses public scopes (ParseImageScope) and mirrors
// (ParseMirror).
func NewImageRules(public, mirrors []string) (ImageRules, error) {
	var r ImageRules
	for _, s := range public {
		scope, err := ParseImageScope(s)
		if err != nil {
			return ImageRules{}, err
		}
		r.Public = append(r.Public, scope)
	}
	for _, s := range mirrors {
		m, err := ParseMirror(s)
		if err != nil {
			return ImageRules{}, err
		}
		r.Mirrors = append(r.Mirrors, m)
	}
	return r, nil
}

// Mirror is a registry that serves an upstream registry's repositories,
// host-style (Prefix "ghcr-mirror.example.com": ghcr.io/acme/app is
// ghcr-mirror.example.com/acme/app) or path-style (Prefix
// "mirror.example.com/ghcr.io": mirror.example.com/ghcr.io/acme/app).
type Mirror struct {
	Prefix, Upstream string
}

// ParseMirror reads a mirror as a platform writes it,
// "<prefix>=<upstream>", and returns it lowercase.
func ParseMirror(text string) (Mirror, error) {
	prefix, upstream, ok := strings.Cut(strings.ToLower(text), "=")
	host, path, _ := strings.Cut(prefix, "/")
	switch {
	case !ok:
		return Mirror{}, fmt.Errorf("mirror %q: want <prefix>=<upstream registry>, e.g. mirror.example.com/ghcr.io=ghcr.io", text)
	case !validRegistryHost(host):
		return Mirror{}, fmt.Errorf("mirror %q: %q is not a registry host", text, host)
	case !validRegistryHost(upstream):
		return Mirror{}, fmt.Errorf("mirror %q: %q is not a registry host", text, upstream)
	case prefix == upstream:
		return Mirror{}, fmt.Errorf("mirror %q: a registry does not mirror itself", text)
	}
	if path != "" {
		// One more component for the owner, one for the name: a valid path.
		if _, err := reference.ParseNamed(prefix + "/owner/name"); err != nil {
			return Mirror{}, fmt.Errorf("mirror %q: %q is not a repository path: %v", text, path, err)
		}
	}
	return Mirror{Prefix: prefix, Upstream: upstream}, nil
}

// ParseImageScope checks a "<registry>/<owner>" scope as a platform writes
// it and returns it lowercase.
func ParseImageScope(scope string) (string, error) {
	registry, owner, ok := strings.Cut(scope, "/")
	switch {
	case !ok || !validRegistryHost(strings.ToLower(registry)):
		return "", fmt.Errorf("%q is not <registry>/<owner>: %q is not a registry host", scope, registry)
	case !validLogin(owner):
		return "", fmt.Errorf("%q is not <registry>/<owner>: %q is not a GitHub login", scope, owner)
	}
	return strings.ToLower(scope), nil
}

// Validate is ValidateImage with the platform's rules: public scopes and
// mirrors. It judges as the admission policy does, from one list
// (Scopes): an image's registry is known when a scope is on it, and the
// image is allowed when its registry and first path component, or (for a
// path-style mirror) its first two, are a scope.
//
// Validate judges for the tenant as a whole, whatever namespace: it does
// not know the in-cluster registry, whose repositories are a namespace's
// (ValidateIn).
func (r ImageRules) Validate(t Tenant, image string) Verdict {
	v, _ := r.judge(t, "", image)
	return v
}

// ValidateIn is Validate for a Pod of namespace, which may also run what
// the in-cluster registry's token service lets it pull there: its
// tenant's owners', its own (under the namespace prefix) and the public
// prefixes' repositories. The admission policy and webhook judge by it.
func (r ImageRules) ValidateIn(t Tenant, namespace, image string) Verdict {
	v, _ := r.judge(t, namespace, image)
	return v
}

// judge is ValidateIn, and whether the scope that allowed the image is a
// public one (directly or through a mirror).
func (r ImageRules) judge(t Tenant, namespace, image string) (Verdict, bool) {
	v := ValidateImage(t, image)
	inCluster, inClusterPublic := r.InCluster.scopes(t, namespace)
	if v.Allowed || (v.Reason != ImageWrongRegistry && v.Reason != ImageWrongOwner) || (len(r.Public) == 0 && len(r.Mirrors) == 0 && len(inCluster) == 0) {
		return v, false
	}
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil { // ValidateImage parsed it already
		return v, false
	}
	domain := strings.ToLower(reference.Domain(named))
	parts := strings.Split(reference.Path(named), "/")
	scopes := r.ScopesIn(t, namespace)
	switch {
	case v.Reason == ImageWrongRegistry && !slices.ContainsFunc(scopes, func(s string) bool { return strings.HasPrefix(s, domain+"/") }):
		return v, false
	case len(parts) < 2:
		return deny(ImageInvalidReference, "%q names no owner: images are <registry>/<owner>/<name>", image), false
	}
	// A scope is the registry and whole path components: owner/ for most,
	// more for a path-style mirror or the in-cluster registry's prefixes;
	// at least one component must follow it.
	for k := 1; k < len(parts); k++ {
		scope := domain + "/" + strings.Join(parts[:k], "/")
		if !slices.Contains(scopes, scope) {
			continue
		}
		upstream, mirror := r.upstream(scope)
		public := slices.Contains(r.Public, upstream) || slices.Contains(inClusterPublic, scope)
		why := fmt.Sprintf("%s is under %s", image, scope)
		if mirror != "" {
			why += fmt.Sprintf(", %s's mirror of %s", mirror, upstream)
		}
		if slices.Contains(inCluster, scope) && !public {
			why += fmt.Sprintf(", which namespace %s may pull from the in-cluster registry", namespace)
		}
		if public {
			why += ", which the platform makes public to every tenant"
		}
		return Verdict{Allowed: true, Reason: ImageAllowed, Message: why}, public
	}
	if v.Reason == ImageWrongOwner {
		return v, false
	}
	return deny(ImageWrongOwner, "%s belongs to %s, neither %s's nor a public owner of %s", image, parts[0], t.ID, domain), false
}

// upstream is the scope a mirrored scope stands for, and the mirror's
// prefix; a scope that is not mirrored stands for itself.
func (r ImageRules) upstream(scope string) (string, string) {
	for _, m := range r.Mirrors {
		if rest, ok := strings.CutPrefix(scope, m.Prefix+"/"); ok && !strings.Contains(rest, "/") {
			return m.Upstream + "/" + rest, m.Prefix
		}
	}
	return scope, ""
}

// IsPublic reports whether an image the tenant may run is so only by a
// public scope.
func (r ImageRules) IsPublic(t Tenant, image string) bool {
	_, public := r.judge(t, "", image)
	return public
}

// Scopes are the tenant's image scopes and the public ones, and each of
// those through each mirror of its registry, sorted: what the admission
// policy allows in the tenant's namespaces.
func (r ImageRules) Scopes(t Tenant) []string {
	direct := append(t.ImageScopes(), r.Public...)
	scopes := slices.Clone(direct)
	for _, m := range r.Mirrors {
		for _, s := range direct {
			if owner, ok := strings.CutPrefix(s, m.Upstream+"/"); ok && !strings.Contains(owner, "/") {
				scopes = append(scopes, m.Prefix+"/"+owner)
			}
		}
	}
	slices.Sort(scopes)
	return slices.Compact(scopes)
}

// ScopesIn are Scopes and the in-cluster registry's scopes of namespace,
// sorted: what the admission policy allows in that namespace (the Syncer
// writes them on it). A scope may have more than one path component
// ("<host>/cluster.local/<namespace>"); it allows the images under it by
// whole components.
func (r ImageRules) ScopesIn(t Tenant, namespace string) []string {
	inCluster, _ := r.InCluster.scopes(t, namespace)
	scopes := append(r.Scopes(t), inCluster...)
	slices.Sort(scopes)
	return slices.Compact(scopes)
}

// ImageScopes lists the "<registry>/<owner>" pairs, lowercase and sorted,
// whose images ValidateImage allows the tenant: every registry of the
// tenant with its owner and each granted owner, and each registry it has a
// credential for with that entry's owners. The admission policy reads
// them from each bound namespace (docs/admission.md), so this is the one
// definition both enforcement points share.
func (t Tenant) ImageScopes() []string {
	owners := append([]string{t.Owner.Login}, t.AllowedOwners...)
	scopes := make([]string, 0, len(t.Registries)*len(owners))
	for _, registry := range t.Registries {
		for _, owner := range owners {
			scopes = append(scopes, strings.ToLower(registry+"/"+owner))
		}
	}
	for _, c := range t.RegistryCredentials {
		for _, owner := range c.Owners {
			scopes = append(scopes, strings.ToLower(c.Host+"/"+owner))
		}
	}
	slices.Sort(scopes)
	return slices.Compact(scopes)
}

func (t Tenant) registryHint() string {
	if len(t.Registries) > 0 {
		return t.Registries[0]
	}
	return DefaultRegistry
}

// ContainerKind says which list of a PodSpec a container is in.
type ContainerKind string

// Container kinds.
const (
	ContainerRegular   ContainerKind = "CONTAINER"
	ContainerInit      ContainerKind = "INIT"
	ContainerEphemeral ContainerKind = "EPHEMERAL"
)

// Container is a container of a Pod: its name, list and image.
type Container struct {
	Name  string
	Kind  ContainerKind
	Image string
}

// ContainerVerdict is the verdict on one container's image.
type ContainerVerdict struct {
	Container
	Verdict
}

// ValidatePod judges every container's image by rules; the Pod is allowed
// only if all of them are.
func ValidatePod(rules ImageRules, t Tenant, containers []Container) (allowed bool, verdicts []ContainerVerdict) {
	allowed = true
	for _, c := range containers {
		v := rules.Validate(t, c.Image)
		allowed = allowed && v.Allowed
		verdicts = append(verdicts, ContainerVerdict{Container: c, Verdict: v})
	}
	return allowed, verdicts
}

// AuthKey is the key of the answer for an image the tenant may run, and
// the image's registry host, both lowercased as the kubelet compares: the
// scope that allowed the image, "<registry>/<owner>", or through a
// path-style mirror "<mirror prefix>/<owner>" (mirror.example.com/ghcr.io/
// acme, not every owner behind the mirror).
func (r ImageRules) AuthKey(image string) (key, host string) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil { // ValidateImage parsed it already
		return "", ""
	}
	host = strings.ToLower(reference.Domain(named))
	path := reference.Path(named)
	for _, m := range r.Mirrors {
		if !strings.Contains(m.Prefix, "/") {
			continue // host-style: the owner is the first component, as on the upstream
		}
		if rest, ok := strings.CutPrefix(host+"/"+path, m.Prefix+"/"); ok {
			owner, _, _ := strings.Cut(rest, "/")
			return m.Prefix + "/" + owner, host
		}
	}
	owner, _, _ := strings.Cut(path, "/")
	return host + "/" + owner, host
}
