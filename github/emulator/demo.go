package emulator

import (
	"cmp"
	"crypto/rsa"
	"fmt"
)

// Demo is the fixture dev mode serves: a GitHub App installed on an
// organization, a classic PAT of a machine user of that organization, and an
// image of the organization in the emulated registry.
type Demo struct {
	AppID          int64
	AppClientID    string
	AppKey         *rsa.PrivateKey
	InstallationID int64
	Org            Account
	MachineUser    Account
	PAT            string
	Image          string
}

// NewDemo starts an emulator holding the demo fixture.
func NewDemo() (*Server, Demo, error) { return NewDemoOn(DemoOptions{}) }

// DemoOptions are what of a demo a caller fixes rather than the emulator
// choosing: dev mode restarted on its data dir brings back the demo its
// tenants were registered with, since a tenant names the registry's
// host:port and holds the PAT.
type DemoOptions struct {
	// RegistryPort is the registry's port on loopback (a kubelet's
	// credential provider config names it before dev mode starts); any free
	// port when 0.
	RegistryPort int
	// PAT is the machine user's classic PAT; a new one when empty.
	PAT string
}

// NewDemoOn is NewDemo with the options given.
func NewDemoOn(opts DemoOptions) (_ *Server, _ Demo, err error) {
	defer func() {
		if r := recover(); r != nil { // serve's panic: the port is taken
			err = fmt.Errorf("demo emulator: %v", r)
		}
	}()
	key, _, err := NewAppKey()
	if err != nil {
		return nil, Demo{}, fmt.Errorf("demo App key: %w", err)
	}
	d := Demo{
		AppID:          1,
		AppClientID:    "Iv23liDemoApp0000001",
		AppKey:         key,
		InstallationID: 42,
		Org:            Account{Login: "octo-org", ID: 1001, Type: "Organization"},
		MachineUser:    Account{Login: "octo-org-bot", ID: 2001, Type: "User"},
		PAT:            cmp.Or(opts.PAT, randomToken("ghp_")),
	}
	s := NewServerOn("127.0.0.1", opts.RegistryPort)
	s.AddApp(d.AppID, &key.PublicKey)
	s.SetAppClientID(d.AppID, d.AppClientID)
	s.AddInstallation(AppInstallation{ID: d.InstallationID, AppID: d.AppID, Account: d.Org,
		Permissions: map[string]string{"packages": "read", "metadata": "read"}})
	s.AddPAT(d.PAT, IssuedPAT{Owner: d.MachineUser, Scopes: []string{"read:packages"}, Orgs: []string{d.Org.Login}})
	s.AddImage(d.Org.Login+"/hello", "latest")
	d.Image = s.RegistryHost() + "/" + d.Org.Login + "/hello:latest"
	return s, d, nil
}

// Fixture is what a process running the emulator (e2e/githubemu) tells its
// clients about the GitHub it emulates, as one JSON line.
type Fixture struct {
	APIURL string `json:"apiURL"`
	// Registry is the emulated ghcr.io's host:port, its token realm on the
	// same host as ghcr.io's is.
	Registry       string `json:"registry"`
	AppID          int64  `json:"appID"`
	AppClientID    string `json:"appClientID"`
	AppKeyPEM      string `json:"appKeyPEM"`
	InstallationID int64  `json:"installationID"`
	AppOwner       string `json:"appOwner"`
	AppOwnerID     int64  `json:"appOwnerID"`
	PATOwner       string `json:"patOwner"`
	PATOwnerID     int64  `json:"patOwnerID"`
	PAT            string `json:"pat"`
	PusherPAT      string `json:"pusherPAT"`
}
