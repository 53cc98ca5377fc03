// Package brokertest holds the test fakes the broker's runtimes share: a
// Source, a recording Sink, a Prober, an in-memory Store, event log and
// inbox, and a sealing Tenants over them. It is for tests only, and
// internal so that only the broker's packages use it.
package brokertest
