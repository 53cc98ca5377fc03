package broker

import (
	"fmt"
	"strings"
	"testing"

	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// Every Reason the domain produces must be expressible in the API.
func TestEveryReasonIsInTheAPI(t *testing.T) {
	for _, r := range []Reason{
		ReasonTokenRevoked, ReasonMissingScope, ReasonInstallationNotFound, ReasonInstallationSuspended,
		ReasonRateLimited, ReasonGitHubUnavailable, ReasonOwnerMismatch, ReasonFineGrainedPAT,
		ReasonAppTokenNotAccepted, ReasonNoPackageAccess, ReasonRegistryUnreachable,
		ReasonAppCredentialsRejected, ReasonImageNotFound, ReasonSecretConflict, ReasonSyncFailed,
		ReasonNamespaceClaimed,
	} {
		if _, ok := credbrokerv1.Reason_value["REASON_"+string(r)]; !ok {
			t.Errorf("REASON_%s is missing from the Reason enum", r)
		}
	}
}

func TestCredentialNeverPrintsItsToken(t *testing.T) {
	c := Credential{Kind: KindPAT, Username: "octo", Token: "ghp_SECRETSECRET"}
	p := PAT{Token: "ghp_SECRETSECRET", Fingerprint: "abc"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v", c, c, c), fmt.Sprintf("%v %+v %#v", p, p, p)} {
		if strings.Contains(s, "SECRET") {
			t.Errorf("formatted value shows the token: %s", s)
		}
	}
}
