package testenv

import "strings"

// The tenant every ImageReferences row is judged for: owner Acme (any
// case), granted acme-shared, on ghcr.io and registry.local:5000; and the
// platform's public scopes and its mirrors (broker.ParseMirror's
// "<prefix>=<upstream>") beside it; and the in-cluster registry behind
// credbroker's token service (--registry-robot-host,
// --registry-namespace-prefix, --registry-public-prefixes), whose
// repositories a namespace may pull: its tenant's owners', its own under
// the namespace prefix, and the public prefixes'.
var (
	ImageTenantOwner      = "Acme"
	ImageTenantRegistries = []string{"ghcr.io", "registry.local:5000"}
	ImageTenantGranted    = []string{"acme-shared"}
	ImagePublicScopes     = []string{"docker.io/istio", "registry.local:5000/platform"}
	ImageMirrors          = []string{"ghcr-mirror.example.com=ghcr.io", "mirror.example.com/ghcr.io=ghcr.io", "mirror.example.com/docker.io=docker.io"}

	ImageInClusterHost            = "registry.cluster.internal:5000"
	ImageInClusterNamespacePrefix = "cluster.local/{namespace}/"
	ImageInClusterPublicPrefixes  = []string{"platform/", "mesh/sidecars/", "vendor/team/tools/"}
)

// ImageReference is a row of the image ownership table: a reference and
// the reason (broker.ImageReason's name) it is allowed or denied with.
type ImageReference struct {
	Image  string
	Reason string
}

// ImageReferences is the one table of references that broker.ValidateImage
// (ImageRules.ValidateIn), the admission webhook and the admission
// policy's CEL are all held to (broker and k8ssync test it), so that the
// API, the webhook and the API server never disagree. The rows are judged
// for a Pod of namespace, which the in-cluster registry's rows name.
func ImageReferences(namespace string) []ImageReference {
	refs := imageReferences()
	for i := range refs {
		refs[i].Image = strings.ReplaceAll(refs[i].Image, "{namespace}", namespace)
	}
	return refs
}

func imageReferences() []ImageReference {
	sha256 := "sha256:" + strings.Repeat("ab", 32)
	return []ImageReference{
		// Allowed: the owner (any case of the login), tags, digests, both, granted owners, deep paths.
		{"ghcr.io/acme/api", "ALLOWED"},
		{"ghcr.io/acme/api:1.2.3", "ALLOWED"},
		{"ghcr.io/acme/api@" + sha256, "ALLOWED"},
		{"ghcr.io/acme/api:1.2@" + sha256, "ALLOWED"},
		{"ghcr.io/acme/api@sha512:" + strings.Repeat("0f", 64), "ALLOWED"},
		{"ghcr.io/acme/team/sub/api:latest", "ALLOWED"},
		{"ghcr.io/acme-shared/base:1", "ALLOWED"},
		{"GHCR.IO/acme/api", "ALLOWED"},
		{"registry.local:5000/acme/api", "ALLOWED"},
		{"registry.LOCAL:5000/acme/api", "ALLOWED"},
		{"ghcr.io/acme/a", "ALLOWED"},
		{"ghcr.io/acme/api_v2.x-y", "ALLOWED"},
		{"ghcr.io/acme/my__app", "ALLOWED"},
		{"ghcr.io/acme/a--b", "ALLOWED"},
		{"ghcr.io/acme/api:V1.0_RC-2", "ALLOWED"},
		// Another owner, however close.
		{"ghcr.io/evil/api", "WRONG_OWNER"},
		{"ghcr.io/acme-evil/api", "WRONG_OWNER"},
		{"ghcr.io/acmee/api", "WRONG_OWNER"},
		{"ghcr.io/acm/api", "WRONG_OWNER"},
		{"ghcr.io/evil/acme/api", "WRONG_OWNER"},
		{"ghcr.io/evil/acme", "WRONG_OWNER"},
		{"ghcr.io/acme-shared-not/x", "WRONG_OWNER"},
		{"registry.local:5000/evil/api", "WRONG_OWNER"},
		// Another registry: look-alikes, ports, schemes, subdomains.
		{"ghcr.io.evil.com/acme/api", "WRONG_REGISTRY"},
		{"evil.com/ghcr.io/acme/api", "WRONG_REGISTRY"},
		{"ghcr.io:443/acme/api", "WRONG_REGISTRY"},
		{"ghcr.io:5000/acme/api", "WRONG_REGISTRY"},
		{"registry.local/acme/api", "WRONG_REGISTRY"},
		{"registry.local:5001/acme/api", "WRONG_REGISTRY"},
		{"www.ghcr.io/acme/api", "WRONG_REGISTRY"},
		{"quay.io/istio/proxyv2", "WRONG_REGISTRY"},
		{"quay.io/acme/api", "WRONG_REGISTRY"},
		{"localhost/acme/api", "WRONG_REGISTRY"},
		{"localhost:5000/acme/api", "WRONG_REGISTRY"},
		{"127.0.0.1:5000/acme/api", "WRONG_REGISTRY"},
		{"[::1]:5000/acme/api", "WRONG_REGISTRY"},
		{"a_b.c/acme/api", "WRONG_REGISTRY"},
		// Public scopes: on a registry of their own, or on the tenant's.
		{"docker.io/istio/proxyv2:1.22.0", "ALLOWED"},
		{"index.docker.io/istio/proxyv2", "ALLOWED"},
		{"DOCKER.IO/istio/proxyv2", "ALLOWED"},
		{"registry.local:5000/platform/base:1", "ALLOWED"},
		{"docker.io/acme/api", "WRONG_OWNER"},
		{"index.docker.io/acme/api", "WRONG_OWNER"},
		{"docker.io/istio-evil/proxyv2", "WRONG_OWNER"},
		{"docker.io/istio", "WRONG_OWNER"},       // docker.io/library/istio
		{"DOCKER.IO/istio", "INVALID_REFERENCE"}, // only "docker.io" itself gets library/
		{"registry.local:5000/platform", "INVALID_REFERENCE"},
		{"istio/proxyv2", "IMPLICIT_DOCKER_HUB"},
		// Mirrors, host-style and path-style: an image through a mirror is
		// the upstream image it stands for.
		{"ghcr-mirror.example.com/acme/api:1", "ALLOWED"},
		{"GHCR-MIRROR.example.com/acme-shared/base", "ALLOWED"},
		{"ghcr-mirror.example.com/evil/api", "WRONG_OWNER"},
		{"ghcr-mirror.example.com/acme", "INVALID_REFERENCE"},
		{"mirror.example.com/ghcr.io/acme/api@" + sha256, "ALLOWED"},
		{"mirror.example.com/ghcr.io/acme/team/api", "ALLOWED"},
		{"mirror.example.com/ghcr.io/evil/api", "WRONG_OWNER"},
		{"mirror.example.com/ghcr.io/evil/acme/api", "WRONG_OWNER"},
		{"mirror.example.com/ghcr.io/acme", "WRONG_OWNER"},
		{"mirror.example.com/acme/api", "WRONG_OWNER"},
		{"mirror.example.com/quay.io/acme/api", "WRONG_OWNER"},
		{"mirror.example.com/docker.io/istio/proxyv2", "ALLOWED"},
		{"mirror.example.com/docker.io/acme/api", "WRONG_OWNER"},
		{"mirror.example.com:5000/ghcr.io/acme/api", "WRONG_REGISTRY"},
		{"ghcr-mirror.example.com.evil.com/acme/api", "WRONG_REGISTRY"},
		{"evil.example.com/ghcr-mirror.example.com/acme/api", "WRONG_REGISTRY"},
		// The in-cluster registry: the namespace's own repositories, its
		// tenant's owners', and the public prefixes, by whole path
		// components; another namespace's, look-alikes and other hosts
		// are not.
		{"registry.cluster.internal:5000/cluster.local/{namespace}/app:1", "ALLOWED"},
		{"registry.cluster.internal:5000/cluster.local/{namespace}/team/app@" + sha256, "ALLOWED"},
		{"REGISTRY.cluster.internal:5000/cluster.local/{namespace}/app", "ALLOWED"},
		{"registry.cluster.internal:5000/acme/app", "ALLOWED"},
		{"registry.cluster.internal:5000/acme-shared/base:1", "ALLOWED"},
		{"registry.cluster.internal:5000/platform/base:1", "ALLOWED"},
		{"registry.cluster.internal:5000/platform/x/y", "ALLOWED"},
		{"registry.cluster.internal:5000/mesh/sidecars/proxy:1", "ALLOWED"},
		{"registry.cluster.internal:5000/cluster.local/other-team/app", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/cluster.local/{namespace}x/app", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/cluster.local/{namespace}-evil/app", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/cluster.localx/{namespace}/app", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/cluster.local/{namespace}", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/cluster.local/app", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/{namespace}/app", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/x/cluster.local/{namespace}/app", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/platformx/y", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/platform", "INVALID_REFERENCE"},
		{"registry.cluster.internal:5000/mesh/other", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/mesh/sidecarsx/proxy", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/mesh/sidecars", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/vendor/team/tools/lint:1", "ALLOWED"},
		{"registry.cluster.internal:5000/vendor/team/toolsx/lint", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/vendor/team/lint", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/vendor/team/tools", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/evil/app", "WRONG_OWNER"},
		{"registry.cluster.internal:5000/Cluster.local/{namespace}/app", "INVALID_REFERENCE"},
		{"registry.cluster.internal/cluster.local/{namespace}/app", "WRONG_REGISTRY"},
		{"registry.cluster.internal:5001/cluster.local/{namespace}/app", "WRONG_REGISTRY"},
		{"registry.cluster.internal.evil.com:5000/cluster.local/{namespace}/app", "WRONG_REGISTRY"},
		{"evil.com/cluster.local/{namespace}/app", "WRONG_REGISTRY"},
		{"evil.com/platform/base", "WRONG_REGISTRY"},
		{"ghcr.io/cluster.local/{namespace}/app", "WRONG_OWNER"},
		{"ghcr.io/platform/base", "WRONG_OWNER"},
		{"registry.local:5000/cluster.local/{namespace}/app", "WRONG_OWNER"},
		// No registry named: Docker Hub.
		{"acme/api", "IMPLICIT_DOCKER_HUB"},
		{"api", "IMPLICIT_DOCKER_HUB"},
		{"ubuntu:24.04", "IMPLICIT_DOCKER_HUB"},
		{"library/ubuntu@" + sha256, "IMPLICIT_DOCKER_HUB"},
		{"ghcr/acme/api", "IMPLICIT_DOCKER_HUB"},
		{"Acme/api", "IMPLICIT_DOCKER_HUB"},
		// Not references at all, or nothing under an owner.
		{"", "INVALID_REFERENCE"},
		{"Api", "INVALID_REFERENCE"},
		{strings.Repeat("ab", 32), "INVALID_REFERENCE"},
		{"ghcr.io/_/acme", "INVALID_REFERENCE"},
		{"ghcr.io/Acme/api", "INVALID_REFERENCE"},
		{"ghcr.io/ACME-shared/x", "INVALID_REFERENCE"},
		{"ghcr.io/acme/API", "INVALID_REFERENCE"},
		{"ghcr.io/acme/../evil/api", "INVALID_REFERENCE"},
		{"ghcr.io/acme//api", "INVALID_REFERENCE"},
		{"ghcr.io//acme/api", "INVALID_REFERENCE"},
		{"ghcr.io/acme/my___app", "INVALID_REFERENCE"},
		{"ghcr.io/acme/api:", "INVALID_REFERENCE"},
		{"ghcr.io:/acme/api", "INVALID_REFERENCE"},
		{"ghcr.io/acme/api@sha256:short", "INVALID_REFERENCE"},
		{"ghcr.io/acme/api@sha256:" + strings.Repeat("AB", 32), "INVALID_REFERENCE"},
		{"ghcr.io/acme/api@md5:" + strings.Repeat("ab", 16), "INVALID_REFERENCE"},
		{"ghcr.io/acme/api@" + sha256 + "0", "INVALID_REFERENCE"},
		{"ghcr.io/acme/api:tag with space", "INVALID_REFERENCE"},
		{" ghcr.io/acme/api", "INVALID_REFERENCE"},
		{"https://ghcr.io/acme/api", "INVALID_REFERENCE"},
		{"ghcr.io/acme", "INVALID_REFERENCE"},
		{"ghcr.io/acme-shared", "INVALID_REFERENCE"},
		{"ghcr.io/", "INVALID_REFERENCE"},
		{"ghcr.io/acme/api:" + strings.Repeat("t", 129), "INVALID_REFERENCE"},
		{"ghcr.io/acme/" + strings.Repeat("a", 250), "ALLOWED"}, // a path of 255, the most
		{"ghcr.io/acme/" + strings.Repeat("a", 251), "INVALID_REFERENCE"},
		{"ghcr.io/-acme/api", "INVALID_REFERENCE"},
		{"ghcr.io/acme/ápi", "INVALID_REFERENCE"},
	}
}
