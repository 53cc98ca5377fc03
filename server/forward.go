package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/credbroker/credbroker/auth"
)

// Forwarded identity: the REST gateway is a client of the gRPC server like
// any other, so it forwards what only it saw of its caller (client
// certificate, address) in metadata signed with a key only this process
// knows; a caller cannot forge it through headers.

func (g *Guard) sign(cert, addr string) string {
	mac := hmac.New(sha256.New, g.forwardKey)
	mac.Write([]byte(cert + "\x00" + addr))
	return base64.RawStdEncoding.EncodeToString(mac.Sum(nil))
}

// forward is the gateway's metadata for an HTTP request.
func (g *Guard) forward(_ context.Context, r *http.Request) metadata.MD {
	cert := ""
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		cert = base64.RawStdEncoding.EncodeToString(r.TLS.VerifiedChains[0][0].Raw)
	}
	return metadata.Pairs(mdClientCert, cert, mdPeer, r.RemoteAddr, mdForwardSig, g.sign(cert, r.RemoteAddr))
}

// dropForwardHeaders keeps HTTP callers from sending the gateway's own
// metadata (grpc-gateway turns Grpc-Metadata-* headers into metadata).
func dropForwardHeaders(key string) (string, bool) {
	if strings.HasPrefix(strings.ToLower(key), "grpc-metadata-x-credbroker-") {
		return "", false
	}
	return runtime.DefaultHeaderMatcher(key)
}

// caller gathers what the call presents: the bearer token, and the client
// certificate and address — from the TLS connection, or as the gateway
// forwarded them for a REST call.
func (g *Guard) caller(ctx context.Context) (auth.Request, string) {
	var req auth.Request
	addr := ""
	if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr.String()
		if tlsInfo, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(tlsInfo.State.VerifiedChains) > 0 {
			req.PeerCertificates = tlsInfo.State.VerifiedChains[0]
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) > 0 {
		if scheme, token, ok := strings.Cut(v[0], " "); ok && strings.EqualFold(scheme, "bearer") {
			req.BearerToken = strings.TrimSpace(token)
		}
	}
	if sig := md.Get(mdForwardSig); len(sig) > 0 {
		cert, fwdAddr := first(md.Get(mdClientCert)), first(md.Get(mdPeer))
		if hmac.Equal([]byte(sig[0]), []byte(g.sign(cert, fwdAddr))) {
			addr = fwdAddr
			if der, err := base64.RawStdEncoding.DecodeString(cert); err == nil && cert != "" {
				if c, err := x509.ParseCertificate(der); err == nil {
					req.PeerCertificates = []*x509.Certificate{c}
				}
			}
		}
	}
	return req, addr
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
