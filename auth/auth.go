package auth

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Request is what a caller presents.
type Request struct {
	// BearerToken is the token of an "Authorization: Bearer" header, if any.
	BearerToken string
	// PeerCertificates are the client certificate chain the TLS handshake
	// verified against the client CA (leaf first); empty without one.
	PeerCertificates []*x509.Certificate
	// Peer is the caller's network address without the port, "" when
	// unknown: what per-caller limits key on before anyone is
	// authenticated.
	Peer string
}

type peerKey struct{}

// WithPeer returns ctx carrying the caller's address (the Guard puts it
// there), for what authenticates from inside a method: the exchange's Pod
// token.
func WithPeer(ctx context.Context, peer string) context.Context {
	return context.WithValue(ctx, peerKey{}, peer)
}

// PeerOf returns the address WithPeer put in ctx, or "".
func PeerOf(ctx context.Context) string {
	p, _ := ctx.Value(peerKey{}).(string)
	return p
}

// Identity is an authenticated caller.
type Identity struct {
	Name   string
	Groups []string
	// Roles granted with the credential itself (token file entries); the
	// Policy adds those bound to the name and groups.
	Roles []string
	// Method names the authenticator that vouched for the caller.
	Method string
	// Extra is what a reviewed token is bound to (TokenReview only).
	Extra map[string][]string
	// TokenHash is the sha256 prefix of the bearer token used, for the audit
	// trail (never the token); empty for client certificates.
	TokenHash string
}

// ErrUnauthenticated means no authenticator accepted the request: it either
// presented nothing any authenticator recognises, or what it presented is
// invalid. Its message never contains the credential.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrBusy means the request could not be authenticated now: the
// authenticator that recognised it is at its limit (TokenReviews in a
// flood). The caller may be who it says; it should retry.
var ErrBusy = errors.New("authentication is busy; retry")

// Authenticator recognises one kind of credential. It returns ok=false when
// the request carries nothing of its kind, so that the next one may try; an
// error means it recognised the credential and refuses it.
type Authenticator interface {
	Authenticate(ctx context.Context, req Request) (id Identity, ok bool, err error)
}

// Chain asks each Authenticator in order; the first that recognises the
// request decides.
type Chain []Authenticator

// Authenticate implements Authenticator: a request no authenticator
// recognises is refused with ErrUnauthenticated.
func (c Chain) Authenticate(ctx context.Context, req Request) (Identity, error) {
	for _, a := range c {
		id, ok, err := a.Authenticate(ctx, req)
		if errors.Is(err, ErrBusy) {
			return Identity{}, err
		}
		if err != nil {
			return Identity{}, errors.Join(ErrUnauthenticated, err)
		}
		if ok {
			if strings.HasPrefix(id.Name, groupSubjectPrefix) {
				// In a policy, group:<name> binds a group: no caller is one.
				return Identity{}, fmt.Errorf("%w: the name %q would be read as a group", ErrUnauthenticated, id.Name)
			}
			return id, nil
		}
	}
	return Identity{}, ErrUnauthenticated
}

// TokenHash is the sha256 of a token, hex; Identity.TokenHash and the audit
// trail carry its first 12 digits.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func tokenPrefix(token string) string { return TokenHash(token)[:12] }

// ClientCertificates authenticates callers by the client certificate the TLS
// handshake verified: the name is the first URI SAN (SPIFFE ids, say) or
// else the subject's common name, the groups its Organizations, each behind
// a prefix. The prefixes keep a certificate from passing for another
// authenticator's identity: a CA that also serves a mesh may sign a common
// name like system:serviceaccount:platform:backend.
type ClientCertificates struct {
	UsernamePrefix string
	GroupsPrefix   string
}

// Authenticate implements Authenticator.
func (c ClientCertificates) Authenticate(_ context.Context, req Request) (Identity, bool, error) {
	if len(req.PeerCertificates) == 0 {
		return Identity{}, false, nil
	}
	leaf := req.PeerCertificates[0]
	name := leaf.Subject.CommonName
	if len(leaf.URIs) > 0 {
		name = leaf.URIs[0].String()
	}
	if name == "" {
		return Identity{}, true, errors.New("client certificate names nobody (no URI SAN, no common name)")
	}
	var groups []string
	for _, g := range leaf.Subject.Organization {
		groups = append(groups, c.GroupsPrefix+g)
	}
	return Identity{Name: c.UsernamePrefix + name, Groups: groups, Method: "client-certificate"}, true, nil
}

// looksLikeJWT reports whether a token has the three dot-separated parts of
// a JWT.
func looksLikeJWT(token string) bool { return strings.Count(token, ".") == 2 }
