package emulator

import (
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
func NewDemo() (*Server, Demo, error) { return NewDemoOn(0) }

// NewDemoOn is NewDemo with its registry on registryPort of loopback (any
// free port when 0): a kubelet's credential provider config names it
// before dev mode starts.
func NewDemoOn(registryPort int) (_ *Server, _ Demo, err error) {
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
		PAT:            randomToken("ghp_"),
	}
	s := NewServerOn("127.0.0.1", registryPort)
	s.AddApp(d.AppID, &key.PublicKey)
	s.SetAppClientID(d.AppID, d.AppClientID)
	s.AddInstallation(Installation{ID: d.InstallationID, AppID: d.AppID, Account: d.Org,
		Permissions: map[string]string{"packages": "read", "metadata": "read"}})
	s.AddPAT(d.PAT, PAT{Owner: d.MachineUser, Scopes: []string{"read:packages"}, Orgs: []string{d.Org.Login}})
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
