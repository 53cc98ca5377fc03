// Command githubemu runs credbroker's GitHub emulator as a process of its
// own, for the end-to-end suite: the App, installations and PATs of the
// suite's fixture, and the control API (emulator.ControlPrefix) to
// suspend, revoke and speed up time. With -distribution, a real CNCF
// Distribution registry serves the emulated ghcr.io's /v2/. It prints the
// fixture as one JSON line on stdout and serves until SIGTERM.
//
//	githubemu [-host 127.0.0.1] [-registry-port N] [-distribution bin/registry -dir DIR]
package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/credbroker/credbroker/github/emulator"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "githubemu:", err)
		os.Exit(1)
	}
}

func run() error {
	host := flag.String("host", "127.0.0.1", "the address to listen on")
	registryPort := flag.Int("registry-port", 0, "the registry's port; any free one when 0")
	distribution := flag.String("distribution", "", "a CNCF Distribution registry binary to serve /v2/")
	dir := flag.String("dir", "", "the registry's storage, configuration and log (with -distribution)")
	flag.Parse()
	key, _, err := emulator.NewAppKey()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s := emulator.NewServerOn(*host, *registryPort)
	defer s.Close()
	if *distribution != "" {
		if *dir == "" {
			return errors.New("-distribution needs -dir")
		}
		stopRegistry, err := s.RunDistribution(ctx, *distribution, *dir)
		if err != nil {
			return err
		}
		defer stopRegistry()
	}
	f := emulator.Fixture{
		APIURL: s.URL(), Registry: s.RegistryHost(), AppID: 7, AppClientID: "Iv23liE2eApp00000007",
		AppKeyPEM:      string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})),
		InstallationID: 70, AppOwner: "c-org", AppOwnerID: 300,
		PATOwner: "a-org", PATOwnerID: 100, PAT: "ghp_" + rand.Text(), PusherPAT: "ghp_" + rand.Text(),
	}
	s.AddApp(f.AppID, &key.PublicKey)
	s.SetAppClientID(f.AppID, f.AppClientID)
	s.AddInstallation(emulator.AppInstallation{ID: f.InstallationID, AppID: f.AppID,
		Account: emulator.Account{Login: f.AppOwner, ID: f.AppOwnerID, Type: "Organization"}, Permissions: map[string]string{"packages": "read"}})
	s.AddPAT(f.PAT, emulator.IssuedPAT{Owner: emulator.Account{Login: "a-bot", ID: 101, Type: "User"},
		Scopes: []string{"read:packages"}, Orgs: []string{f.PATOwner}})
	s.AddPAT(f.PusherPAT, emulator.IssuedPAT{Owner: emulator.Account{Login: "pusher", ID: 900, Type: "User"},
		Scopes: []string{"write:packages"}, Orgs: []string{"a-org", "b-org", "c-org"}})
	if err := json.NewEncoder(os.Stdout).Encode(f); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
