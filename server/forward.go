package server

import (
	"context"
	"crypto/x509"
	"net/http"
	"strings"

	"github.com/fullstorydev/grpchan/inprocgrpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/credbroker/credbroker/auth"
)

// Forwarded identity: the REST gateway calls the services through the
// in-process channel, whose server side sees the gateway's own context as
// the client context (inprocgrpc.ClientContext). The gateway leaves there
// what only it saw of its caller — the verified client certificate chain
// and the address — where no caller can write: a gRPC caller has no
// client context, and headers and metadata carry nothing the Guard trusts.
// Nothing is encoded, signed or parsed again per call.

type forwardedKey struct{}

// forwarded is what the HTTP server saw of a REST caller.
type forwarded struct {
	certificates []*x509.Certificate
	addr         string
}

// forwardCaller puts the caller's certificate chain and address into the
// context of the gateway's call.
func forwardCaller(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := forwarded{addr: r.RemoteAddr}
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			f.certificates = r.TLS.VerifiedChains[0]
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardedKey{}, f)))
	})
}

// caller gathers what the call presents: the bearer token, and the client
// certificate and address — from the TLS connection, or as the HTTP server
// saw them for a REST call.
func (g *Guard) caller(ctx context.Context) (auth.Request, string) {
	var req auth.Request
	addr := ""
	if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr.String()
		if tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(tlsInfo.State.VerifiedChains) > 0 {
			req.PeerCertificates = tlsInfo.State.VerifiedChains[0]
		}
	}
	if client := inprocgrpc.ClientContext(ctx); client != nil {
		if f, ok := client.Value(forwardedKey{}).(forwarded); ok {
			req.PeerCertificates, addr = f.certificates, f.addr
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) > 0 {
		if scheme, token, ok := strings.Cut(v[0], " "); ok && strings.EqualFold(scheme, "bearer") {
			req.BearerToken = strings.TrimSpace(token)
		}
	}
	return req, addr
}
