// Package registrytoken is credbroker as the token service of an
// in-cluster registry, in the Docker registry token protocol (the
// registry's auth.token.realm points here).
//
// Service (service.go) answers GET and its OAuth2 flavour, POST: it
// authenticates the caller (caller.go: anonymous, a Pod's ServiceAccount
// token, a namespace's robot, or a refresh token), grants each repository
// asked for no more than the caller's tenant may do there (its owners'
// repositories under OwnerPrefix, its namespace's under NamespacePrefix,
// the public prefixes; scope.go reads the scopes) and signs the JWT the
// registry verifies with Keys, whose public half it publishes (JWKS).
// Refresh tokens (refresh.go) are never worth more than the credential
// they were obtained with, which each refresh checks again.
// RobotPasswords derives the robots' passwords the pull Secrets carry,
// and checks them.
package registrytoken
