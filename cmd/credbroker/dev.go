package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/credbroker/credbroker/broker"
	"github.com/credbroker/credbroker/github/emulator"
)

// devMode is what `serve --dev` adds, like `vault server -dev`: a throw-away
// data dir, a generated admin token and encryption key kept in it, and
// (without --github-url) the GitHub emulator with its demo App, PAT and
// image (in a real registry with --dev-registry-bin), and three demo tenants.
type devMode struct {
	adminToken    string
	encryptionKey []byte
	emulator      *emulator.Server // nil with --github-url
	demo          emulator.Demo
	realRegistry  bool // Distribution serves the emulator's /v2/
	cleanup       []func()
}

// startDev prepares dev mode; cfg.dataDir becomes a temporary directory when
// it is empty. close undoes it.
func startDev(cfg *serveConfig) (_ *devMode, err error) {
	d := &devMode{}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if cfg.dataDir == "" {
		dir, err := os.MkdirTemp("", "credbroker-dev-")
		if err != nil {
			return nil, fmt.Errorf("dev data dir: %w", err)
		}
		d.cleanup = append(d.cleanup, func() { _ = os.RemoveAll(dir) })
		cfg.dataDir = dir
	}
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	token, err := readOrCreate(filepath.Join(cfg.dataDir, "admin.token"), base64.RawURLEncoding)
	if err != nil {
		return nil, fmt.Errorf("dev admin token: %w", err)
	}
	d.adminToken = strings.TrimSpace(string(token))
	if d.encryptionKey, err = readOrCreate(filepath.Join(cfg.dataDir, "encryption.key"), base64.StdEncoding); err != nil {
		return nil, fmt.Errorf("dev encryption key: %w", err)
	}
	if cfg.githubURL != "" {
		return d, nil
	}
	kept, err := keptDemo(cfg.dataDir, cfg.devRegistryPort)
	if err != nil {
		return nil, err
	}
	if d.emulator, d.demo, err = emulator.NewDemoOn(kept); err != nil {
		if kept.RegistryPort != cfg.devRegistryPort {
			return nil, fmt.Errorf("dev registry on port %d, which %s keeps for the data dir's demo tenants: %w",
				kept.RegistryPort, filepath.Join(cfg.dataDir, demoRegistryPortFile), err)
		}
		return nil, err
	}
	d.cleanup = append(d.cleanup, d.emulator.Close)
	_, port, _ := strings.Cut(d.emulator.RegistryHost(), ":")
	if err := os.WriteFile(filepath.Join(cfg.dataDir, demoRegistryPortFile), []byte(port), 0o600); err != nil {
		return nil, fmt.Errorf("dev registry port: %w", err)
	}
	if cfg.devRegistryBin != "" {
		stop, err := d.emulator.RunDistribution(context.Background(), cfg.devRegistryBin, filepath.Join(cfg.dataDir, "registry"))
		if err != nil {
			return nil, fmt.Errorf("dev registry: %w", err)
		}
		d.cleanup = append(d.cleanup, stop)
		d.realRegistry = true
	}
	if err := os.WriteFile(filepath.Join(cfg.dataDir, demoPATFile), []byte(d.demo.PAT), 0o600); err != nil {
		return nil, fmt.Errorf("dev demo PAT: %w", err)
	}
	return d, nil
}

// Files of the data dir that keep the demo from one start to the next.
const (
	demoPATFile          = "demo-pat"
	demoRegistryPortFile = "demo-registry-port"
)

// keptDemo returns what dataDir keeps of the demo of an earlier start: the
// demo tenants name the registry's host:port and hold the PAT, so a restart
// on the same data dir must bring back both, or its tenants would no longer
// be the demo's (and registering them would clash with the stored ones).
// flagPort is --dev-registry-port, 0 when not given; a port other than the
// kept one is refused, as the stored tenants name that one.
func keptDemo(dataDir string, flagPort int) (emulator.DemoOptions, error) {
	opts := emulator.DemoOptions{RegistryPort: flagPort}
	pat, err := os.ReadFile(filepath.Join(dataDir, demoPATFile))
	switch {
	case err == nil:
		opts.PAT = strings.TrimSpace(string(pat))
	case !errors.Is(err, os.ErrNotExist):
		return emulator.DemoOptions{}, fmt.Errorf("dev demo PAT: %w", err)
	}
	path := filepath.Join(dataDir, demoRegistryPortFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return opts, nil
	}
	if err != nil {
		return emulator.DemoOptions{}, fmt.Errorf("dev registry port: %w", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || port <= 0 || port > 65535 {
		return emulator.DemoOptions{}, fmt.Errorf("dev registry port in %s: %q is not a port; remove the file, or start with a new --data-dir", path, raw)
	}
	if flagPort != 0 && flagPort != port {
		return emulator.DemoOptions{}, fmt.Errorf("--dev-registry-port %d: the demo tenants of data dir %s name port %d (kept in %s); give that port, or a new --data-dir",
			flagPort, dataDir, port, path)
	}
	opts.RegistryPort = port
	return opts, nil
}

func (d *devMode) close() {
	for i := len(d.cleanup) - 1; i >= 0; i-- {
		d.cleanup[i]()
	}
}

// readOrCreate returns the file at path, first writing a random key there
// in the given encoding if there is none: a restart with the same data dir
// keeps its token and key.
func readOrCreate(path string, enc *base64.Encoding) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, broker.KeySize)
		_, _ = rand.Read(key) // crypto/rand.Read never returns an error since Go 1.24.
		data = []byte(enc.EncodeToString(key))
		err = os.WriteFile(path, data, 0o600)
	}
	return data, err
}

// registerDemo registers dev mode's tenants of the emulated organization,
// each proving its credential on the emulated registry: one with the App
// installation (refused by the registry, as ghcr.io refuses App tokens
// private pulls), one with the machine user's classic PAT, and one with
// the same PAT in pull mode PROVIDER (no Secret: the node's credential
// provider asks).
// Creating a tenant that exists with the same content is not an error, and
// a restart with the same --data-dir brings back the same demo (keptDemo),
// so it registers nothing new.
func (d *devMode) registerDemo(ctx context.Context, registry *broker.Tenants) error {
	if d.emulator == nil {
		return nil
	}
	demo := d.demo
	owner := broker.Owner{Login: demo.Org.Login, ID: demo.Org.ID, Type: broker.OwnerOrganization}
	registries := []string{d.emulator.RegistryHost()}
	for _, t := range []broker.Tenant{
		{ID: "demo", Owner: owner, App: &broker.GitHubApp{InstallationID: demo.InstallationID}, Namespaces: []string{"demo"},
			Registries: registries, ProbeImage: demo.Image},
		{ID: "demo-pat", Owner: owner, PAT: &broker.PAT{Token: demo.PAT}, Namespaces: []string{"demo-pat"},
			Registries: registries, ProbeImage: demo.Image},
		{ID: "demo-secretless", Owner: owner, PAT: &broker.PAT{Token: demo.PAT}, Namespaces: []string{"demo-secretless"},
			Registries: registries, ProbeImage: demo.Image, PullMode: broker.PullProvider},
	} {
		_, _, err := registry.Create(ctx, t)
		if errors.Is(err, broker.ErrAlreadyExists) {
			return fmt.Errorf("register demo tenant %s: %w (the data dir holds a demo this start cannot bring back, from an older credbroker or another registry port: start with a new --data-dir)", t.ID, err)
		}
		if err != nil {
			return fmt.Errorf("register demo tenant %s: %w", t.ID, err)
		}
	}
	return nil
}
