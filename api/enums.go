package api

import (
	"github.com/credbroker/credbroker/broker"
	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// enum maps a domain enum to its proto enum and back. Each table is written
// out value by value, so that renaming a constant on either side breaks the
// build or TestEnumTablesMatchTheDescriptors, never silently becomes
// UNSPECIFIED. A domain value missing from a table is UNSPECIFIED on the
// wire; a proto value missing from it is "" in the domain.
type enum[D comparable, P ~int32] struct {
	toProto  map[D]P
	toDomain map[P]D
}

func newEnum[D comparable, P ~int32](pairs map[D]P) enum[D, P] {
	e := enum[D, P]{toProto: pairs, toDomain: make(map[P]D, len(pairs))}
	for d, p := range pairs {
		e.toDomain[p] = d
	}
	return e
}

func (e enum[D, P]) proto(d D) P  { return e.toProto[d] }
func (e enum[D, P]) domain(p P) D { return e.toDomain[p] }

var (
	credentialKinds = newEnum(map[broker.CredentialKind]credbrokerv1.CredentialKind{
		broker.KindGitHubApp: credbrokerv1.CredentialKind_CREDENTIAL_KIND_GITHUB_APP,
		broker.KindPAT:       credbrokerv1.CredentialKind_CREDENTIAL_KIND_PAT,
	})
	credentialStates = newEnum(map[broker.CredentialState]credbrokerv1.CredentialState{
		broker.CredentialPending:  credbrokerv1.CredentialState_CREDENTIAL_STATE_PENDING,
		broker.CredentialReady:    credbrokerv1.CredentialState_CREDENTIAL_STATE_READY,
		broker.CredentialDegraded: credbrokerv1.CredentialState_CREDENTIAL_STATE_DEGRADED,
		broker.CredentialFailed:   credbrokerv1.CredentialState_CREDENTIAL_STATE_FAILED,
	})
	syncStates = newEnum(map[broker.SyncState]credbrokerv1.SyncState{
		broker.SyncPending:  credbrokerv1.SyncState_SYNC_STATE_PENDING,
		broker.SyncSynced:   credbrokerv1.SyncState_SYNC_STATE_SYNCED,
		broker.SyncConflict: credbrokerv1.SyncState_SYNC_STATE_CONFLICT,
		broker.SyncFailed:   credbrokerv1.SyncState_SYNC_STATE_FAILED,
	})
	reasons = newEnum(map[broker.Reason]credbrokerv1.Reason{
		broker.ReasonTokenRevoked:           credbrokerv1.Reason_REASON_TOKEN_REVOKED,
		broker.ReasonMissingScope:           credbrokerv1.Reason_REASON_MISSING_SCOPE,
		broker.ReasonInstallationNotFound:   credbrokerv1.Reason_REASON_INSTALLATION_NOT_FOUND,
		broker.ReasonInstallationSuspended:  credbrokerv1.Reason_REASON_INSTALLATION_SUSPENDED,
		broker.ReasonRateLimited:            credbrokerv1.Reason_REASON_RATE_LIMITED,
		broker.ReasonGitHubUnavailable:      credbrokerv1.Reason_REASON_GITHUB_UNAVAILABLE,
		broker.ReasonOwnerMismatch:          credbrokerv1.Reason_REASON_OWNER_MISMATCH,
		broker.ReasonFineGrainedPAT:         credbrokerv1.Reason_REASON_FINE_GRAINED_PAT,
		broker.ReasonAppTokenNotAccepted:    credbrokerv1.Reason_REASON_APP_TOKEN_NOT_ACCEPTED,
		broker.ReasonNoPackageAccess:        credbrokerv1.Reason_REASON_NO_PACKAGE_ACCESS,
		broker.ReasonRegistryUnreachable:    credbrokerv1.Reason_REASON_REGISTRY_UNREACHABLE,
		broker.ReasonSecretConflict:         credbrokerv1.Reason_REASON_SECRET_CONFLICT,
		broker.ReasonSyncFailed:             credbrokerv1.Reason_REASON_SYNC_FAILED,
		broker.ReasonDecryptionFailed:       credbrokerv1.Reason_REASON_DECRYPTION_FAILED,
		broker.ReasonAppCredentialsRejected: credbrokerv1.Reason_REASON_APP_CREDENTIALS_REJECTED,
		broker.ReasonImageNotFound:          credbrokerv1.Reason_REASON_IMAGE_NOT_FOUND,
		broker.ReasonNamespaceClaimed:       credbrokerv1.Reason_REASON_NAMESPACE_CLAIMED,
	})
	eventTypes = newEnum(map[broker.EventType]credbrokerv1.EventType{
		broker.EventCredentialExpiring:      credbrokerv1.EventType_EVENT_TYPE_CREDENTIAL_EXPIRING,
		broker.EventCredentialRefreshFailed: credbrokerv1.EventType_EVENT_TYPE_CREDENTIAL_REFRESH_FAILED,
		broker.EventCredentialRevoked:       credbrokerv1.EventType_EVENT_TYPE_CREDENTIAL_REVOKED,
		broker.EventInstallationSuspended:   credbrokerv1.EventType_EVENT_TYPE_INSTALLATION_SUSPENDED,
		broker.EventInstallationDeleted:     credbrokerv1.EventType_EVENT_TYPE_INSTALLATION_DELETED,
		broker.EventProbeFailed:             credbrokerv1.EventType_EVENT_TYPE_PROBE_FAILED,
		broker.EventSyncFailed:              credbrokerv1.EventType_EVENT_TYPE_SYNC_FAILED,
		broker.EventSyncConflict:            credbrokerv1.EventType_EVENT_TYPE_SYNC_CONFLICT,
		broker.EventRecovered:               credbrokerv1.EventType_EVENT_TYPE_RECOVERED,
		broker.EventWebhookUndelivered:      credbrokerv1.EventType_EVENT_TYPE_WEBHOOK_UNDELIVERED,
		broker.EventPullDenied:              credbrokerv1.EventType_EVENT_TYPE_PULL_DENIED,
		broker.EventRegistryCheckFailed:     credbrokerv1.EventType_EVENT_TYPE_REGISTRY_CHECK_FAILED,
		broker.EventSelectorUnprotected:     credbrokerv1.EventType_EVENT_TYPE_NAMESPACE_SELECTOR_UNPROTECTED,
	})
	registryStates = newEnum(map[broker.RegistryState]credbrokerv1.RegistryState{
		broker.RegistryPending: credbrokerv1.RegistryState_REGISTRY_STATE_PENDING,
		broker.RegistryHealthy: credbrokerv1.RegistryState_REGISTRY_STATE_HEALTHY,
		broker.RegistryFailing: credbrokerv1.RegistryState_REGISTRY_STATE_FAILING,
		broker.RegistryExpired: credbrokerv1.RegistryState_REGISTRY_STATE_EXPIRED,
	})
	severities = newEnum(map[broker.Severity]credbrokerv1.Severity{
		broker.SeverityInfo:     credbrokerv1.Severity_SEVERITY_INFO,
		broker.SeverityWarning:  credbrokerv1.Severity_SEVERITY_WARNING,
		broker.SeverityCritical: credbrokerv1.Severity_SEVERITY_CRITICAL,
	})
	imageReasons = newEnum(map[broker.ImageReason]credbrokerv1.ImageReason{
		broker.ImageAllowed:           credbrokerv1.ImageReason_IMAGE_REASON_ALLOWED,
		broker.ImageInvalidReference:  credbrokerv1.ImageReason_IMAGE_REASON_INVALID_REFERENCE,
		broker.ImageImplicitDockerHub: credbrokerv1.ImageReason_IMAGE_REASON_IMPLICIT_DOCKER_HUB,
		broker.ImageWrongRegistry:     credbrokerv1.ImageReason_IMAGE_REASON_WRONG_REGISTRY,
		broker.ImageWrongOwner:        credbrokerv1.ImageReason_IMAGE_REASON_WRONG_OWNER,
	})
	containerKinds = newEnum(map[broker.ContainerKind]credbrokerv1.ContainerKind{
		broker.ContainerRegular:   credbrokerv1.ContainerKind_CONTAINER_KIND_CONTAINER,
		broker.ContainerInit:      credbrokerv1.ContainerKind_CONTAINER_KIND_INIT,
		broker.ContainerEphemeral: credbrokerv1.ContainerKind_CONTAINER_KIND_EPHEMERAL,
	})
	pullModes = newEnum(map[broker.PullMode]credbrokerv1.PullMode{
		broker.PullSecret:   credbrokerv1.PullMode_PULL_MODE_SECRET,
		broker.PullProvider: credbrokerv1.PullMode_PULL_MODE_PROVIDER,
		broker.PullBoth:     credbrokerv1.PullMode_PULL_MODE_BOTH,
	})
	exchangeDenials = newEnum(map[broker.ExchangeDenial]credbrokerv1.ExchangeDenial{
		broker.DenyTokenRejected:        credbrokerv1.ExchangeDenial_EXCHANGE_DENIAL_TOKEN_REJECTED,
		broker.DenyTokenNotPodBound:     credbrokerv1.ExchangeDenial_EXCHANGE_DENIAL_TOKEN_NOT_POD_BOUND,
		broker.DenyNamespaceNotBound:    credbrokerv1.ExchangeDenial_EXCHANGE_DENIAL_NAMESPACE_NOT_BOUND,
		broker.DenyImageNotAllowed:      credbrokerv1.ExchangeDenial_EXCHANGE_DENIAL_IMAGE_NOT_ALLOWED,
		broker.DenyPullModeSecret:       credbrokerv1.ExchangeDenial_EXCHANGE_DENIAL_PULL_MODE_SECRET,
		broker.DenyPublicImage:          credbrokerv1.ExchangeDenial_EXCHANGE_DENIAL_PUBLIC_IMAGE,
		broker.DenyCredentialNotReady:   credbrokerv1.ExchangeDenial_EXCHANGE_DENIAL_CREDENTIAL_NOT_READY,
		broker.DenyNoRegistryCredential: credbrokerv1.ExchangeDenial_EXCHANGE_DENIAL_NO_REGISTRY_CREDENTIAL,
	})
	ownerTypes = newEnum(map[broker.OwnerType]credbrokerv1.OwnerType{
		broker.OwnerUser:         credbrokerv1.OwnerType_OWNER_TYPE_USER,
		broker.OwnerOrganization: credbrokerv1.OwnerType_OWNER_TYPE_ORGANIZATION,
	})
)
