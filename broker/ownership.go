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
	if !static && !slicesContainsFold(t.Registries, domain) {
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
	if !strings.EqualFold(owner, t.Owner.Login) && !slicesContainsFold(t.AllowedOwners, owner) {
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
func (r ImageRules) Validate(t Tenant, image string) Verdict {
	v, _ := r.judge(t, image)
	return v
}

// judge is Validate, and whether the scope that allowed the image is a
// public one (directly or through a mirror).
func (r ImageRules) judge(t Tenant, image string) (Verdict, bool) {
	v := ValidateImage(t, image)
	if v.Allowed || (v.Reason != ImageWrongRegistry && v.Reason != ImageWrongOwner) || (len(r.Public) == 0 && len(r.Mirrors) == 0) {
		return v, false
	}
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil { // ValidateImage parsed it already
		return v, false
	}
	domain := strings.ToLower(reference.Domain(named))
	parts := strings.Split(reference.Path(named), "/")
	scopes := r.Scopes(t)
	switch {
	case v.Reason == ImageWrongRegistry && !slices.ContainsFunc(scopes, func(s string) bool { return strings.HasPrefix(s, domain+"/") }):
		return v, false
	case len(parts) < 2:
		return deny(ImageInvalidReference, "%q names no owner: images are <registry>/<owner>/<name>", image), false
	}
	candidates := []string{domain + "/" + parts[0]}
	if len(parts) > 2 {
		candidates = append(candidates, domain+"/"+parts[0]+"/"+parts[1])
	}
	for _, scope := range candidates {
		if !slices.Contains(scopes, scope) {
			continue
		}
		upstream, mirror := r.upstream(scope)
		public := slices.Contains(r.Public, upstream)
		why := fmt.Sprintf("%s is under %s", image, scope)
		if mirror != "" {
			why += fmt.Sprintf(", %s's mirror of %s", mirror, upstream)
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
	_, public := r.judge(t, image)
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
