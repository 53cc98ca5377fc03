package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// RunDistribution puts a real CNCF Distribution registry behind the
// emulator's registry host, as ghcr.io serves its token realm and its
// registry on one host: /token stays the emulator's realm, every /v2/
// request is passed to Distribution, which checks the realm's tokens itself
// and stores blobs for real, so pull clients that fetch layers (containerd,
// skopeo) work. bin is Distribution's `registry` binary; its storage,
// configuration and log are kept in dir (a restart with the same dir keeps
// the images). stop ends the process.
func (s *Server) RunDistribution(ctx context.Context, bin, dir string) (stop func(), err error) {
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, fmt.Errorf("distribution dir: %w", err)
	}
	certFile := filepath.Join(dir, "realm.pem")
	if err := os.WriteFile(certFile, s.RegistryCertPEM(), 0o600); err != nil {
		return nil, fmt.Errorf("distribution realm certificate: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("distribution address: %w", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	configFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configFile, []byte(s.distributionConfig(addr, filepath.Join(dir, "data"), certFile)), 0o600); err != nil {
		return nil, fmt.Errorf("distribution config: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "registry.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("distribution log: %w", err)
	}
	cmd := exec.Command(bin, "serve", configFile)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start distribution: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logFile.Close(); close(exited) }()
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	upstream := &url.URL{Scheme: "http", Host: addr}
	if err := waitChallenge(ctx, upstream.String()+"/v2/", exited); err != nil {
		stop()
		return nil, fmt.Errorf("distribution on %s (log in %s): %w", addr, dir, err)
	}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.ModifyResponse = s.answerAsGHCR
	s.upstream.Store(proxy)
	return stop, nil
}

// answerAsGHCR turns Distribution's 401 insufficient_scope to a logged-in
// request whose token grants nothing on the repository into ghcr.io's 403
// DENIED (deniedPull).
func (s *Server) answerAsGHCR(resp *http.Response) error {
	if resp.StatusCode != http.StatusUnauthorized || !s.loggedIn(resp.Request) ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		return nil
	}
	_ = resp.Body.Close()
	rec := httptest.NewRecorder()
	deniedPull(rec)
	denied := rec.Result()
	resp.StatusCode, resp.Status, resp.Header, resp.Body, resp.ContentLength =
		denied.StatusCode, denied.Status, denied.Header, denied.Body, denied.ContentLength
	return nil
}

// distributionConfig configures Distribution to trust the emulator's realm:
// the service and issuer of its tokens, the certificate of their key.
func (s *Server) distributionConfig(addr, storage, rootCertFile string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: emulator-only-not-a-secret
auth:
  token:
    realm: %s
    service: %s
    issuer: %s
    rootcertbundle: %s
`, storage, addr, s.RegistryRealm(), s.RegistryService(), RegistryIssuer, rootCertFile)
}

// waitChallenge waits until url answers 401, as a registry with token auth
// does once it serves.
func waitChallenge(ctx context.Context, url string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited before serving")
		case <-ctx.Done():
			return fmt.Errorf("not serving: %w", ctx.Err())
		case <-tick.C:
		}
	}
}
