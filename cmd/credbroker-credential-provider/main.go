// Command credbroker-credential-provider is a kubelet image credential
// provider plugin (credentialprovider.kubelet.k8s.io/v1). The kubelet runs
// it before pulling an image it matches, with a CredentialProviderRequest on
// stdin carrying the Pod's ServiceAccount token for credbroker's audience;
// the plugin trades the token at credbroker for the credential of the
// tenant that holds the Pod's namespace and prints a
// CredentialProviderResponse whose auth applies to that image's owner only.
//
// On failure it writes one line to stderr, which the kubelet logs, prints
// nothing on stdout and exits non-zero: 2 for a request it cannot read, 1
// for a broker that refuses or does not answer. The kubelet then pulls
// without credentials and the registry answers 401.
//
// With CREDBROKER_REGISTRY_TOKEN=true (the second provider that install
// writes for an in-cluster registry) it asks nobody: the Pod's token, for
// the registry token service's audience, is the password the registry's
// clients present to credbroker's token service, which decides per
// repository (docs/registry-token-service.md).
//
// "install" is the DaemonSet's mode: it copies the binary into the kubelet's
// credential provider bin dir and writes the provider config there.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/distribution/reference"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"

	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// Exit statuses.
const (
	exitDenied   = 1 // the broker refused, or could not be asked
	exitBadInput = 2 // the request or the flags make no sense
)

// Settings come from flags, or from the environment the kubelet's
// CredentialProviderConfig gives the plugin (env), flags winning.
const (
	envBroker     = "CREDBROKER_BROKER"
	envCAFile     = "CREDBROKER_CA_FILE"
	envServerName = "CREDBROKER_SERVER_NAME"
	envTimeout    = "CREDBROKER_TIMEOUT"
	envMaxCache   = "CREDBROKER_MAX_CACHE"
	envPlaintext  = "CREDBROKER_PLAINTEXT"
	// envRegistryToken selects the in-cluster registry's mode.
	envRegistryToken = "CREDBROKER_REGISTRY_TOKEN"
)

// DefaultMaxCache bounds how long the kubelet reuses a credential: a
// revocation reaches the node within it.
const DefaultMaxCache = 10 * time.Minute

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) > 0 && args[0] == "install" {
		return install(ctx, args[1:], stderr, getenv)
	}
	answer := passToken
	if getenv(envRegistryToken) != "true" {
		cfg, err := parseFlags(args, getenv)
		if err != nil {
			say(stderr, "%v", err)
			return exitBadInput
		}
		answer = func(req *credentialproviderv1.CredentialProviderRequest) (*credentialproviderv1.CredentialProviderResponse, error) {
			return exchange(ctx, cfg, req)
		}
	}
	req, err := readRequest(stdin)
	if err != nil {
		say(stderr, "%v", err)
		return exitBadInput
	}
	resp, err := answer(req)
	if err != nil {
		say(stderr, "no credential for %s: %v", req.Image, err)
		return exitDenied
	}
	if err := json.NewEncoder(stdout).Encode(resp); err != nil {
		say(stderr, "write the response: %v", err)
		return exitDenied
	}
	return 0
}

// say writes the one line the kubelet logs.
func say(stderr io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(stderr, "credbroker-credential-provider: "+format+"\n", args...)
}

// config is how the plugin reaches the broker.
type config struct {
	broker     string
	caFile     string
	serverName string
	plaintext  bool
	timeout    time.Duration
	maxCache   time.Duration
}

func parseFlags(args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("credbroker-credential-provider", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg config
	fs.StringVar(&cfg.broker, "broker", getenv(envBroker), "credbroker's gRPC address, host:port ("+envBroker+")")
	fs.StringVar(&cfg.caFile, "ca-file", getenv(envCAFile), "PEM CA bundle that signs credbroker's certificate; the system's roots when empty ("+envCAFile+")")
	fs.StringVar(&cfg.serverName, "server-name", getenv(envServerName), "name credbroker's certificate must carry, when it is not the address's host ("+envServerName+")")
	fs.BoolVar(&cfg.plaintext, "plaintext", getenv(envPlaintext) == "true", "speak to credbroker without TLS: only where something else encrypts ("+envPlaintext+"=true)")
	timeout, err := durationEnv(getenv, envTimeout, 10*time.Second)
	if err != nil {
		return config{}, err
	}
	maxCache, err := durationEnv(getenv, envMaxCache, DefaultMaxCache)
	if err != nil {
		return config{}, err
	}
	fs.DurationVar(&cfg.timeout, "timeout", timeout, "bound of the whole exchange; the kubelet allows a plugin one minute ("+envTimeout+")")
	fs.DurationVar(&cfg.maxCache, "max-cache", maxCache, "longest the kubelet may reuse a credential ("+envMaxCache+")")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	switch {
	case cfg.broker == "":
		return config{}, errors.New("no broker address: set --broker or " + envBroker)
	case cfg.timeout <= 0 || cfg.timeout > 50*time.Second:
		return config{}, fmt.Errorf("--timeout %s: want more than 0 and at most 50s, inside the kubelet's one minute", cfg.timeout)
	case cfg.maxCache < 0:
		return config{}, fmt.Errorf("--max-cache %s: want 0 or more", cfg.maxCache)
	}
	return cfg, nil
}

func durationEnv(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: %w", name, v, err)
	}
	return d, nil
}

// maxRequestBytes bounds stdin: a request is a token and an image name.
const maxRequestBytes = 64 << 10

// readRequest reads the kubelet's CredentialProviderRequest, refusing
// anything else: a request of another version may mean other fields.
func readRequest(stdin io.Reader) (*credentialproviderv1.CredentialProviderRequest, error) {
	data, err := io.ReadAll(io.LimitReader(stdin, maxRequestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the request on stdin: %w", err)
	}
	if len(data) > maxRequestBytes {
		return nil, fmt.Errorf("the request on stdin is larger than %d bytes", maxRequestBytes)
	}
	var req credentialproviderv1.CredentialProviderRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, fmt.Errorf("the request on stdin is not a CredentialProviderRequest: %w", err)
	}
	want := credentialproviderv1.SchemeGroupVersion.String()
	switch {
	case req.APIVersion != want:
		return nil, fmt.Errorf("request apiVersion %q: this plugin speaks %s (set apiVersion in the kubelet's CredentialProviderConfig)", req.APIVersion, want)
	case req.Kind != "CredentialProviderRequest":
		return nil, fmt.Errorf("request kind %q: want CredentialProviderRequest", req.Kind)
	case req.Image == "":
		return nil, errors.New("the request names no image")
	case req.ServiceAccountToken == "":
		return nil, errors.New("the request carries no serviceAccountToken: give the provider tokenAttributes (serviceAccountTokenAudience) in the kubelet's CredentialProviderConfig")
	}
	return &req, nil
}

// exchange asks the broker for the image's credential.
func exchange(ctx context.Context, cfg config, req *credentialproviderv1.CredentialProviderRequest) (*credentialproviderv1.CredentialProviderResponse, error) {
	creds, err := transport(cfg)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(cfg.broker, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("broker address %q: %w", cfg.broker, err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	got, err := credbrokerv1.NewPullCredentialServiceClient(conn).ExchangeServiceAccountToken(ctx,
		&credbrokerv1.ExchangeServiceAccountTokenRequest{ServiceAccountToken: req.ServiceAccountToken, Image: req.Image})
	if err != nil {
		st := status.Convert(err)
		code := st.Code().String()
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok {
				if r := info.GetReason(); r == reasonPullModeSecret || r == reasonPublicImage {
					// Nothing to add: the Pod's own pull Secrets do, or the
					// image is public; uncached, so that a tenant moved to
					// PROVIDER is served at once.
					return response(map[string]credentialproviderv1.AuthConfig{}, 0), nil
				}
				code += " " + info.GetReason()
			}
		}
		return nil, fmt.Errorf("credbroker at %s: %s: %s", cfg.broker, code, st.Message())
	}
	auth := map[string]credentialproviderv1.AuthConfig{}
	for prefix, a := range got.GetAuth() {
		if !strings.Contains(prefix, "/") { // never a whole registry
			return nil, fmt.Errorf("credbroker answered a credential for all of %q; refusing it", prefix)
		}
		auth[prefix] = credentialproviderv1.AuthConfig{Username: a.GetUsername(), Password: a.GetPassword()}
	}
	if len(auth) == 0 {
		return nil, errors.New("credbroker answered no credential")
	}
	return response(auth, max(0, min(got.GetCacheDuration().AsDuration(), cfg.maxCache))), nil
}

// passToken answers an in-cluster registry's image with the Pod's token as
// the password for the whole registry: the token service grants per
// repository. Nothing is cached; asking costs nothing.
func passToken(req *credentialproviderv1.CredentialProviderRequest) (*credentialproviderv1.CredentialProviderResponse, error) {
	named, err := reference.ParseNormalizedNamed(req.Image)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", req.Image, err)
	}
	return response(map[string]credentialproviderv1.AuthConfig{
		reference.Domain(named): {Username: "serviceaccount", Password: req.ServiceAccountToken},
	}, 0), nil
}

// response is the kubelet's answer: auth for this image, cached by image
// (each image's owner decides the credential) for cacheFor, 0 meaning not
// at all.
func response(auth map[string]credentialproviderv1.AuthConfig, cacheFor time.Duration) *credentialproviderv1.CredentialProviderResponse {
	return &credentialproviderv1.CredentialProviderResponse{
		TypeMeta:      metav1.TypeMeta{APIVersion: credentialproviderv1.SchemeGroupVersion.String(), Kind: "CredentialProviderResponse"},
		CacheKeyType:  credentialproviderv1.ImagePluginCacheKeyType,
		CacheDuration: &metav1.Duration{Duration: cacheFor},
		Auth:          auth,
	}
}

// reasonPullModeSecret is the broker's answer for a tenant whose Pods pull
// with its Secret: nothing is wrong, the plugin has nothing to add.
const reasonPullModeSecret = "PULL_MODE_SECRET"

// reasonPublicImage is the broker's answer for an image every tenant may
// run, which goes without a credential.
const reasonPublicImage = "PUBLIC_IMAGE"

func transport(cfg config) (credentials.TransportCredentials, error) {
	if cfg.plaintext {
		return insecure.NewCredentials(), nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.serverName}
	if cfg.caFile != "" {
		pem, err := os.ReadFile(cfg.caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", cfg.caFile)
		}
	}
	return credentials.NewTLS(tc), nil
}
