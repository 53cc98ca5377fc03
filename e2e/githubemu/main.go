// Command githubemu runs credbroker's GitHub emulator as a process of its
// own, for the end-to-end suite: the App, installations and PATs of the
// suite's fixture, and the control API (emulator.ControlPrefix) to
// suspend, revoke and speed up time. It prints the fixture as one JSON line
// on stdout and serves until SIGTERM.
package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/signal"
	"strings"
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
	key, _, err := emulator.NewAppKey()
	if err != nil {
		return err
	}
	s := emulator.NewServer()
	defer s.Close()
	f := emulator.Fixture{
		APIURL: s.URL(), Realm: strings.Replace(s.RegistryRealm(), "127.0.0.1", "localhost", 1),
		RealmCertPEM: string(s.RegistryCertPEM()), AppID: 7,
		AppKeyPEM:      string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})),
		InstallationID: 70, AppOwner: "c-org", AppOwnerID: 300,
		PATOwner: "a-org", PATOwnerID: 100, PAT: "ghp_" + rand.Text(), PusherPAT: "ghp_" + rand.Text(),
	}
	s.AddApp(f.AppID, &key.PublicKey)
	s.AddInstallation(emulator.Installation{ID: f.InstallationID, AppID: f.AppID,
		Account: emulator.Account{Login: f.AppOwner, ID: f.AppOwnerID, Type: "Organization"}, Permissions: map[string]string{"packages": "read"}})
	s.AddPAT(f.PAT, emulator.PAT{Owner: emulator.Account{Login: "a-bot", ID: 101, Type: "User"},
		Scopes: []string{"read:packages"}, Orgs: []string{f.PATOwner}})
	s.AddPAT(f.PusherPAT, emulator.PAT{Owner: emulator.Account{Login: "pusher", ID: 900, Type: "User"},
		Scopes: []string{"write:packages"}, Orgs: []string{"a-org", "b-org", "c-org"}})
	if err := json.NewEncoder(os.Stdout).Encode(f); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
