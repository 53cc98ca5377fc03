package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeletconfigv1 "k8s.io/kubelet/config/v1"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"
	"sigs.k8s.io/yaml"
)

// ProviderName is the plugin's name in the kubelet's config: the file the
// kubelet runs from its bin dir.
const ProviderName = "credbroker-credential-provider"

// RegistryTokenProviderName is the same binary as the in-cluster
// registry's provider: the kubelet names a provider after its file, and
// gives each provider one token audience.
const RegistryTokenProviderName = "credbroker-registry-token-provider"

// installConfig is what the install mode writes, in host paths.
type installConfig struct {
	hostRoot   string // where the host's / is mounted; "" on the host itself
	binDir     string
	configFile string
	caFile     string // a CA bundle to copy beside the config
	broker     string
	serverName string
	plaintext  bool
	audience   string
	match      []string
	maxCache   string
	wait       bool
	// registryMatch, when set, adds the in-cluster registry's provider
	// for these images, with tokens for registryAudience.
	registryMatch    []string
	registryAudience string
}

// install copies this binary into the kubelet's credential provider bin
// dir and writes the provider config, then (with --wait, as a DaemonSet
// does) stays until it is stopped. Files are written whole and renamed, so
// a kubelet starting meanwhile reads the old file or the new one.
func install(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) int {
	cfg, err := parseInstall(args, getenv)
	if err == nil {
		err = installFiles(cfg)
	}
	if err != nil {
		say(stderr, "install: %v", err)
		return exitBadInput
	}
	say(stderr, "installed %s and %s; the kubelet reads them when started with --image-credential-provider-bin-dir=%s --image-credential-provider-config=%s",
		filepath.Join(cfg.binDir, ProviderName), cfg.configFile, cfg.binDir, cfg.configFile)
	if cfg.wait {
		<-ctx.Done()
	}
	return 0
}

func parseInstall(args []string, getenv func(string) string) (installConfig, error) {
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg installConfig
	var match, registryMatch string
	fs.StringVar(&cfg.hostRoot, "host-root", "", "where the host's file system is mounted (a DaemonSet's hostPath); paths below are the host's")
	fs.StringVar(&cfg.binDir, "bin-dir", "/etc/kubernetes/credential-providers", "the kubelet's --image-credential-provider-bin-dir")
	fs.StringVar(&cfg.configFile, "config", "/etc/kubernetes/credential-providers/credbroker.yaml", "the kubelet's --image-credential-provider-config")
	fs.StringVar(&cfg.caFile, "ca-file", "", "CA bundle of credbroker's certificate, copied beside the config")
	fs.StringVar(&cfg.broker, "broker", getenv(envBroker), "credbroker's gRPC address as the node reaches it (a Service's ClusterIP:port: a node resolves no cluster DNS)")
	fs.StringVar(&cfg.serverName, "server-name", "", "name credbroker's certificate carries, when the address is an IP")
	fs.BoolVar(&cfg.plaintext, "plaintext", false, "speak to credbroker without TLS")
	fs.StringVar(&cfg.audience, "audience", "credbroker", "the ServiceAccount token audience credbroker exchanges (its --provider-audience)")
	fs.StringVar(&match, "match-images", "ghcr.io", "comma-separated matchImages: the registries whose pulls ask credbroker")
	fs.StringVar(&cfg.maxCache, "max-cache", DefaultMaxCache.String(), "longest the kubelet may reuse a credential")
	fs.BoolVar(&cfg.wait, "wait", false, "stay until stopped, as a DaemonSet's container")
	fs.StringVar(&registryMatch, "registry-token-match-images", "", "comma-separated matchImages of an in-cluster registry whose token service is credbroker: its pulls present the Pod's ServiceAccount token (docs/registry-token-service.md)")
	fs.StringVar(&cfg.registryAudience, "registry-token-audience", "credbroker-registry", "the audience of those tokens (credbroker's --registry-token-audience)")
	if err := fs.Parse(args); err != nil {
		return installConfig{}, err
	}
	cfg.match, cfg.registryMatch = splitList(match), splitList(registryMatch)
	switch {
	case cfg.broker == "":
		return installConfig{}, errors.New("no broker address: set --broker")
	case !filepath.IsAbs(cfg.binDir) || !filepath.IsAbs(cfg.configFile):
		return installConfig{}, errors.New("--bin-dir and --config must be absolute paths of the host")
	case len(cfg.match) == 0:
		return installConfig{}, errors.New("--match-images names no registry")
	case cfg.audience == "":
		return installConfig{}, errors.New("--audience is empty")
	case len(cfg.registryMatch) > 0 && (cfg.registryAudience == "" || cfg.registryAudience == cfg.audience):
		return installConfig{}, errors.New("--registry-token-audience must be set and differ from --audience: a token for the exchange must not reach a registry")
	}
	return cfg, nil
}

func splitList(list string) []string {
	var out []string
	for _, item := range strings.Split(list, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// providerConfig is the kubelet's CredentialProviderConfig for credbroker.
func providerConfig(cfg installConfig, caPath string) ([]byte, error) {
	requireSA := true
	env := []kubeletconfigv1.ExecEnvVar{{Name: envBroker, Value: cfg.broker}, {Name: envMaxCache, Value: cfg.maxCache}}
	if caPath != "" {
		env = append(env, kubeletconfigv1.ExecEnvVar{Name: envCAFile, Value: caPath})
	}
	if cfg.serverName != "" {
		env = append(env, kubeletconfigv1.ExecEnvVar{Name: envServerName, Value: cfg.serverName})
	}
	if cfg.plaintext {
		env = append(env, kubeletconfigv1.ExecEnvVar{Name: envPlaintext, Value: "true"})
	}
	c := kubeletconfigv1.CredentialProviderConfig{
		TypeMeta: metav1.TypeMeta{APIVersion: kubeletconfigv1.SchemeGroupVersion.String(), Kind: "CredentialProviderConfig"},
		Providers: []kubeletconfigv1.CredentialProvider{{
			Name:        ProviderName,
			MatchImages: cfg.match,
			// The kubelet's fallback when a response says nothing; ours always does.
			DefaultCacheDuration: &metav1.Duration{},
			APIVersion:           credentialproviderv1.SchemeGroupVersion.String(),
			Env:                  env,
			TokenAttributes: &kubeletconfigv1.ServiceAccountTokenAttributes{
				ServiceAccountTokenAudience: cfg.audience,
				// One answer per token: a token is one Pod's, and so is its tenant.
				CacheType:             kubeletconfigv1.TokenServiceAccountTokenCacheType,
				RequireServiceAccount: &requireSA,
			},
		}},
	}
	if len(cfg.registryMatch) > 0 {
		c.Providers = append(c.Providers, kubeletconfigv1.CredentialProvider{
			Name:                 RegistryTokenProviderName,
			MatchImages:          cfg.registryMatch,
			DefaultCacheDuration: &metav1.Duration{},
			APIVersion:           credentialproviderv1.SchemeGroupVersion.String(),
			Env:                  []kubeletconfigv1.ExecEnvVar{{Name: envRegistryToken, Value: "true"}},
			TokenAttributes: &kubeletconfigv1.ServiceAccountTokenAttributes{
				ServiceAccountTokenAudience: cfg.registryAudience,
				CacheType:                   kubeletconfigv1.TokenServiceAccountTokenCacheType,
				RequireServiceAccount:       &requireSA,
			},
		})
	}
	return yaml.Marshal(c)
}

func installFiles(cfg installConfig) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		return fmt.Errorf("read this binary: %w", err)
	}
	host := func(p string) string { return filepath.Join(cfg.hostRoot, p) }
	if err := writeFile(host(filepath.Join(cfg.binDir, ProviderName)), bin, 0o755); err != nil {
		return err
	}
	if len(cfg.registryMatch) > 0 {
		if err := writeFile(host(filepath.Join(cfg.binDir, RegistryTokenProviderName)), bin, 0o755); err != nil {
			return err
		}
	}
	caPath := ""
	if cfg.caFile != "" {
		ca, err := os.ReadFile(cfg.caFile)
		if err != nil {
			return fmt.Errorf("read the CA file: %w", err)
		}
		caPath = filepath.Join(filepath.Dir(cfg.configFile), "credbroker-ca.crt")
		if err := writeFile(host(caPath), ca, 0o644); err != nil {
			return err
		}
	}
	data, err := providerConfig(cfg, caPath)
	if err != nil {
		return fmt.Errorf("encode the provider config: %w", err)
	}
	return writeFile(host(cfg.configFile), data, 0o644)
}

// writeFile replaces path whole: written beside it, then renamed.
func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
