package telemetry

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

func TestOriginLookupMetrics(t *testing.T) {
	m := NewMetrics(BuildInfo{})
	origin := &fakeOrigin{records: map[string]userstore.Status{"a": userstore.Active, "i": userstore.Inactive}}
	dir := m.Origin(origin)
	ctx := context.Background()
	for _, id := range []string{"a", "i", "nobody"} {
		if _, err := dir.Lookup(ctx, userstore.User, id); err != nil {
			t.Fatal(err)
		}
	}
	origin.err = fmt.Errorf("pg: %w", userstore.ErrInvalidRecord)
	if _, err := dir.Lookup(ctx, userstore.User, "null-flag"); !errors.Is(err, userstore.ErrInvalidRecord) {
		t.Fatalf("invalid record: err = %v", err)
	}
	origin.err = errors.Join(userstore.ErrUnavailable, errors.New("database down"))
	if _, err := dir.Lookup(ctx, userstore.User, "a"); err == nil {
		t.Fatal("lookup through a failing origin succeeded")
	}
	reg := m.Registry()
	wantValue(t, reg, MetricDirectoryLookups, map[string]string{"layer": "origin", "outcome": "hit"}, 2)
	wantValue(t, reg, MetricDirectoryLookups, map[string]string{"layer": "origin", "outcome": "miss"}, 1)
	wantValue(t, reg, MetricDirectoryLookups, map[string]string{"layer": "origin", "outcome": "invalid"}, 1)
	wantValue(t, reg, MetricDirectoryLookups, map[string]string{"layer": "origin", "outcome": "error"}, 1)
	wantValue(t, reg, MetricOriginDuration, map[string]string{"outcome": "ok"}, 4)
	wantValue(t, reg, MetricOriginDuration, map[string]string{"outcome": "error"}, 1)
	// The Redis layer in front of an origin reports its failed writes.
	m.ObserveLookup("redis", "write_error")
	wantValue(t, reg, MetricDirectoryLookups, map[string]string{"layer": "redis", "outcome": "write_error"}, 1)

	var none *Metrics
	if none.Origin(origin) != userstore.Directory(origin) {
		t.Error("nil Metrics wrapped the origin")
	}
}
