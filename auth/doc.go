// Package auth decides who is calling credbroker and what they may do.
//
// Authentication is a Chain of Authenticators — client certificates, a file
// of hashed bearer tokens (TokenFile), OIDC ID tokens, Kubernetes
// TokenReview — where the first that recognises a request decides.
// ServiceAccount tokens are checked locally first (ServiceAccountKeys:
// issuer, audience, expiry, signature) so that a forged token costs the API
// server nothing; PodTokens authenticates the Pod-bound tokens of the
// credential provider exchange and of the registry token service.
//
// Authorization maps the caller's name and groups to roles (admin,
// tenant-admin:<tenant>, tenant-reader:<tenant>, metrics-reader) through a
// Policy. A Rule says what one API method asks of its caller (its Access,
// the tenant it concerns, whether it is audited, its Limit, the fields a
// tenant-admin may not write); the table of Rules by method lives beside
// the API it describes (api.Methods). Buckets keeps the token buckets
// those limits are counted in.
//
// The package knows nothing of gRPC or of the generated API, and imports
// no client-go: the server hands it a Request, the API package its table,
// k8ssync the functions that reach the cluster (ReviewFunc, IssuerSource).
package auth
