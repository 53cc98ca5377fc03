package broker

import (
	"time"
)

// AuditRecord is one entry of the audit trail: who did what to which
// tenant, and how it ended. It never holds a secret: a bearer token appears
// as the first 12 hex digits of its SHA-256, an issued credential as its
// fingerprint.
type AuditRecord struct {
	Time        time.Time `json:"time"`
	Caller      string    `json:"caller"`
	AuthMethod  string    `json:"authMethod"`
	TokenSHA256 string    `json:"tokenSha256,omitempty"`
	Peer        string    `json:"peer,omitempty"`
	Method      string    `json:"method"`
	TenantID    string    `json:"tenantID,omitempty"`
	Result      string    `json:"result"`
	Fingerprint string    `json:"fingerprint,omitempty"`
}
