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

// Fixture is what the suite needs to know about the emulated GitHub.
type Fixture struct {
	APIURL string `json:"apiURL"`
	// Realm is the registry token endpoint, on localhost: pull clients
	// refuse a realm given as an IP address.
	Realm          string `json:"realm"`
	RealmCertPEM   string `json:"realmCertPEM"`
	AppID          int64  `json:"appID"`
	AppKeyPEM      string `json:"appKeyPEM"`
	InstallationID int64  `json:"installationID"`
	AppOwner       string `json:"appOwner"`
	AppOwnerID     int64  `json:"appOwnerID"`
	PATOwner       string `json:"patOwner"`
	PATOwnerID     int64  `json:"patOwnerID"`
	PAT            string `json:"pat"`
	PusherPAT      string `json:"pusherPAT"`
}

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
	f := Fixture{
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
