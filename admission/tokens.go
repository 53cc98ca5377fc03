package admission

import (
	"bytes"
	_ "embed"
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// TokensName is the name of the policy that keeps tokens for the
// credential provider's audience the nodes' (tokens.yaml), and of its
// binding.
const TokensName = "credbroker-provider-tokens"

// TokensYAML is tokens.yaml as shipped; the Helm chart carries a copy in
// charts/credbroker/files, kept equal by a test.
//
//go:embed tokens.yaml
var TokensYAML []byte

// tokensAudienceTest is how tokens.yaml compares a TokenRequest's audience
// with ProviderAudience.
const tokensAudienceTest = "exists(a, a == '%s')"

// Tokens returns the policy that refuses anyone but a node a
// TokenRequest for audience (the credential provider's,
// --provider-audience) in namespaces bound to a tenant.
func Tokens(audience string) (*admissionregistrationv1.ValidatingAdmissionPolicy, error) {
	if err := literal("the credential provider's audience", audience); err != nil {
		return nil, err
	}
	return decode(bytes.ReplaceAll(TokensYAML, fmt.Appendf(nil, tokensAudienceTest, ProviderAudience), fmt.Appendf(nil, tokensAudienceTest, audience)))
}

// MayRequestProviderTokens reports whether a requester may ask for a
// token for the credential provider's audience in a bound namespace, as
// tokens.yaml decides: a node, as the Node authorizer knows nodes (the
// user system:node:<name> in the group system:nodes), or a cluster-admin
// (system:masters), who could impersonate a node anyway.
func MayRequestProviderTokens(user string, groups []string) bool {
	if slices.Contains(groups, "system:masters") {
		return true
	}
	return strings.HasPrefix(user, "system:node:") && user != "system:node:" && slices.Contains(groups, "system:nodes")
}
