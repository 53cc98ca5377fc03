// Package registrytoken is credbroker as the token service of an
// in-cluster registry, in the Docker registry token protocol (the
// registry's auth.token.realm points here): it authenticates the caller,
// grants each repository asked for no more than the caller's tenant may
// do there, and signs the JWT the registry verifies with the keys this
// package publishes (JWKS).
package registrytoken
