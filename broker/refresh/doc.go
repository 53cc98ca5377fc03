// Package refresh is the leader's refresh loop: the Refresher keeps every
// tenant's credential fresh, proved and published to the Sink, and
// SyncConditions turns the Sink's per-namespace reports into conditions.
//
// The Refresher reads as parts, each in a file of its own: refresher.go
// (Run and Step, the loop), timing.go (when to renew and retry, pure),
// keys.go (which tenants share which credential), renew.go (the one verb
// that mints, as consecutive steps: renew, renewKey = obtain + record,
// then handOut), credstore.go (surviving a restart),
// publish.go (deliver, the probe pool, publish), revoke.go (retired
// tokens), conditions.go (which failure is which event), status.go,
// installation.go (GitHub's word on an installation) and
// syncconditions.go (the sync conditions).
//
// It is a room of its own because only the leader runs it and nothing
// below it may reach into its state: it imports the broker root, notify,
// exchange, registryhealth and internal/kit, and no adapter imports it
// (leader, api and cmd/credbroker wire it).
package refresh
