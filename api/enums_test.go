package api

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	credbrokerv1 "github.com/credbroker/credbroker/proto/credbroker/v1"
)

// checkEnum holds a table to its generated enum in both directions: every
// value the proto declares (but UNSPECIFIED) has exactly one domain value
// that maps back to it, and every domain value maps to a declared value.
func checkEnum[D comparable, P ~int32](e enum[D, P], desc protoreflect.EnumDescriptor) (problems []string) {
	errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	values := desc.Values()
	var zero D
	for i := range values.Len() {
		v := values.Get(i)
		p := P(v.Number())
		d := e.domain(p)
		switch {
		case v.Number() == 0 && d != zero:
			errorf("%s maps to %v, want no domain value", v.Name(), d)
		case v.Number() == 0:
		case d == zero:
			errorf("%s has no domain value", v.Name())
		case e.proto(d) != p:
			errorf("%s → %v → %d, want it back", v.Name(), d, e.proto(d))
		}
	}
	if len(e.toDomain) != len(e.toProto) {
		errorf("%d domain values share %d proto values", len(e.toProto), len(e.toDomain))
	}
	for d, p := range e.toProto {
		if p == 0 || values.ByNumber(protoreflect.EnumNumber(p)) == nil {
			errorf("domain value %v maps to %d, which the proto does not declare", d, p)
		}
	}
	return problems
}

func TestEnumTablesMatchTheDescriptors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		problems []string
	}{
		{"CredentialKind", checkEnum(credentialKinds, credbrokerv1.CredentialKind(0).Descriptor())},
		{"CredentialState", checkEnum(credentialStates, credbrokerv1.CredentialState(0).Descriptor())},
		{"SyncState", checkEnum(syncStates, credbrokerv1.SyncState(0).Descriptor())},
		{"RegistryState", checkEnum(registryStates, credbrokerv1.RegistryState(0).Descriptor())},
		{"Reason", checkEnum(reasons, credbrokerv1.Reason(0).Descriptor())},
		{"EventType", checkEnum(eventTypes, credbrokerv1.EventType(0).Descriptor())},
		{"Severity", checkEnum(severities, credbrokerv1.Severity(0).Descriptor())},
		{"ImageReason", checkEnum(imageReasons, credbrokerv1.ImageReason(0).Descriptor())},
		{"ContainerKind", checkEnum(containerKinds, credbrokerv1.ContainerKind(0).Descriptor())},
		{"OwnerType", checkEnum(ownerTypes, credbrokerv1.OwnerType(0).Descriptor())},
		{"PullMode", checkEnum(pullModes, credbrokerv1.PullMode(0).Descriptor())},
		{"ExchangeDenial", checkEnum(exchangeDenials, credbrokerv1.ExchangeDenial(0).Descriptor())},
	} {
		for _, p := range tc.problems {
			t.Errorf("%s: %s", tc.name, p)
		}
	}
}

// TestEnumCheckCatchesBrokenTables shows the check failing on a table that
// lacks declared values and on one that maps two domain values to one.
func TestEnumCheckCatchesBrokenTables(t *testing.T) {
	desc := credbrokerv1.Severity(0).Descriptor()
	partial := newEnum(map[string]credbrokerv1.Severity{"INFO": credbrokerv1.Severity_SEVERITY_INFO})
	if problems := checkEnum(partial, desc); len(problems) != 2 {
		t.Errorf("a table without WARNING and CRITICAL: got %q, want one problem for each", problems)
	}
	shared := newEnum(map[string]credbrokerv1.Severity{
		"INFO": credbrokerv1.Severity_SEVERITY_INFO, "LOW": credbrokerv1.Severity_SEVERITY_INFO,
		"WARNING": credbrokerv1.Severity_SEVERITY_WARNING, "CRITICAL": credbrokerv1.Severity_SEVERITY_CRITICAL,
		"HUGE": credbrokerv1.Severity(42),
	})
	if problems := checkEnum(shared, desc); len(problems) < 2 {
		t.Errorf("a table with a shared and an undeclared value: got %q, want both named", problems)
	}
}
