package userstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

const (
	subUserA = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	subUserB = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
)

func mustSub(t *testing.T, s Subjects, sub, wantID string, wantFound bool) {
	t.Helper()
	id, found, err := s.UserBySub(t.Context(), sub)
	if err != nil {
		t.Fatalf("UserBySub(%q): %v", sub, err)
	}
	if id != wantID || found != wantFound {
		t.Fatalf("UserBySub(%q) = %q, %v; want %q, %v", sub, id, found, wantID, wantFound)
	}
}

func TestMemorySubjects(t *testing.T) {
	m, err := NewMemoryFrom([]Record{
		{ID: strings.ToUpper(subUserA), Active: true, Sub: "sub-a"},
		{ID: subUserB, Sub: "sub-b"},
		{ID: "c0000000-0000-4000-8000-000000000000", Active: true},
	}, []Record{{ID: "meet-web", Active: true}}, MemoryOptions{NormalizeUserID: lowerUUID})
	if err != nil {
		t.Fatal(err)
	}
	mustSub(t, m, "sub-a", subUserA, true) // the canonical id
	mustSub(t, m, "sub-b", subUserB, true)
	mustSub(t, m, "SUB-A", "", false) // subjects compare exactly
	mustSub(t, m, "", "", false)
	mustSub(t, m, "meet-web", "", false)

	// Put moves a user's sub: the old one finds nobody.
	if err := m.Put(User, Record{ID: subUserA, Active: true, Sub: "sub-a2"}); err != nil {
		t.Fatal(err)
	}
	mustSub(t, m, "sub-a", "", false)
	mustSub(t, m, "sub-a2", subUserA, true)
	// A sub another user has is refused, and nothing changes.
	if err := m.Put(User, Record{ID: subUserB, Active: true, Sub: "sub-a2"}); err == nil || strings.Contains(err.Error(), "sub-a2") {
		t.Fatalf("Put of a taken sub: %v; want an error that does not quote the sub", err)
	}
	mustSub(t, m, "sub-a2", subUserA, true)
	mustSub(t, m, "sub-b", subUserB, true)
	if st, _ := m.Lookup(t.Context(), User, subUserB); st != Inactive {
		t.Fatalf("a refused Put changed the record: %s", st)
	}
	// Removing a sub, then giving it to another user.
	if err := m.Put(User, Record{ID: subUserA, Active: true}); err != nil {
		t.Fatal(err)
	}
	mustSub(t, m, "sub-a2", "", false)
	if err := m.Put(User, Record{ID: subUserB, Sub: "sub-a2"}); err != nil {
		t.Fatal(err)
	}
	mustSub(t, m, "sub-a2", subUserB, true)
	mustSub(t, m, "sub-b", "", false)
	// Delete takes the sub with it, whatever the id's spelling.
	m.Delete(User, strings.ToUpper(subUserB))
	mustSub(t, m, "sub-a2", "", false)
	// Apps have no sub.
	if err := m.Put(App, Record{ID: "meet-web", Active: true, Sub: "x"}); err == nil {
		t.Fatal("Put of an app with a sub: no error")
	}
	if err := m.Put(User, Record{ID: subUserA, Sub: "bad\x00sub"}); err == nil {
		t.Fatal("Put of a sub with a control character: no error")
	}
}

func TestMemorySubjectLoadErrors(t *testing.T) {
	opts := MemoryOptions{NormalizeUserID: lowerUUID}
	for name, tc := range map[string]struct {
		users, apps []Record
		want        string
	}{
		"duplicate sub": {users: []Record{{ID: subUserA, Sub: "s"}, {ID: subUserB, Sub: "s"}}, want: "users[1]: user \"" + subUserB + "\": duplicate sub"},
		"app with sub":  {apps: []Record{{ID: "meet-web", Sub: "s"}}, want: "apps[0]: app \"meet-web\" has a sub"},
		"sub too long":  {users: []Record{{ID: subUserA, Sub: strings.Repeat("é", MaxSubLen+1)}}, want: "longer than 255"},
		"control":       {users: []Record{{ID: subUserA, Sub: "a\nb"}}, want: "control"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewMemoryFrom(tc.users, tc.apps, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want one containing %q", err, tc.want)
			}
		})
	}
	// 255 characters of two bytes each: Meet's column holds it.
	if _, err := NewMemoryFrom([]Record{{ID: subUserA, Sub: strings.Repeat("é", MaxSubLen)}}, nil, opts); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFileSubs(t *testing.T) {
	yamlPath := testkit.WriteFile(t, "users.yaml", `
users:
  - {id: `+subUserA+`, active: true, sub: "alice@idp"}
  - {id: `+subUserB+`, active: false}
apps:
  - {id: meet-web, active: true}
`)
	m, err := LoadFile(yamlPath)
	if err != nil {
		t.Fatal(err)
	}
	mustSub(t, m, "alice@idp", subUserA, true)
	jsonPath := testkit.WriteFile(t, "users.json", `[{"id":"`+subUserA+`","active":true,"sub":"s1"},{"id":"`+subUserB+`","active":true,"sub":"s1"}]`)
	if _, err := LoadFile(jsonPath); err == nil || !strings.Contains(err.Error(), "users[1]") || !strings.Contains(err.Error(), "duplicate sub") {
		t.Fatalf("duplicate sub in a JSON file: %v", err)
	}
	appPath := testkit.WriteFile(t, "apps.yaml", "apps:\n  - {id: meet-web, active: true, sub: x}\n")
	if _, err := LoadFile(appPath); err == nil || !strings.Contains(err.Error(), "line 2: apps[0]") {
		t.Fatalf("app with a sub: %v", err)
	}
}

func TestReadImportSubs(t *testing.T) {
	in := `{"id":"` + subUserA + `","active":true,"sub":"s1"}
{"id":"` + subUserB + `","active":true,"sub":"s1"}
{"id":"c0000000-0000-4000-8000-000000000000","active":true,"extra":{"sub":"s2"}}
{"id":"d0000000-0000-4000-8000-000000000000","active":true,"sub":"bad\u0007"}
{"id":"e0000000-0000-4000-8000-000000000000","active":true,"sub":""}
`
	imp, err := ReadImport(strings.NewReader(in), User, lowerUUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Records) != 2 || imp.Records[0].Sub != "s1" || imp.Records[1].Sub != "" {
		t.Fatalf("records %+v", imp.Records)
	}
	want := []string{"line 2: duplicate sub (first on line 1)", `line 3: extra field "sub": set it at the top level`, "line 4: sub contains control characters"}
	if len(imp.Rejected) != len(want) {
		t.Fatalf("rejected %v; want %v", imp.Rejected, want)
	}
	for i, le := range imp.Rejected {
		if le.Error() != want[i] {
			t.Errorf("rejected[%d] = %q; want %q", i, le.Error(), want[i])
		}
	}
	// CSV takes a sub column; apps take no sub.
	imp, err = ReadImport(strings.NewReader("id,active,sub\nmeet-web,1,x\nother,1,\n"), App, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Records) != 1 || len(imp.Rejected) != 1 || !strings.Contains(imp.Rejected[0].Err, "app has a sub") {
		t.Fatalf("apps with a sub column: %+v", imp)
	}
	imp, err = ReadImport(strings.NewReader("sub,id,active\ns-1,"+subUserA+",true\n"), User, lowerUUID)
	if err != nil || len(imp.Records) != 1 || imp.Records[0].Sub != "s-1" {
		t.Fatalf("CSV with a sub column: %+v, %v", imp, err)
	}
}

func TestParseSubChange(t *testing.T) {
	if sub, ok := ParseSubChange("sub:a:b"); !ok || sub != "a:b" {
		t.Errorf(`ParseSubChange("sub:a:b") = %q, %v`, sub, ok)
	}
	for _, s := range []string{"sub:", "user:x", "sub", ""} {
		if _, ok := ParseSubChange(s); ok {
			t.Errorf("ParseSubChange(%q) ok", s)
		}
	}
	// The directory's notices stay as they were.
	if _, _, ok := ParseChange("sub:x"); ok {
		t.Error(`ParseChange("sub:x") ok`)
	}
}

// fakeSubjects is a scripted Subjects; gate, when set, holds every call.
type fakeSubjects struct {
	mu    sync.Mutex
	ids   map[string]string
	err   error
	gate  chan struct{}
	calls atomic.Int64
}

func (f *fakeSubjects) UserBySub(ctx context.Context, sub string) (string, bool, error) {
	f.calls.Add(1)
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", false, fmt.Errorf("fake: %w: %w", ErrUnavailable, ctx.Err())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", false, f.err
	}
	id, ok := f.ids[sub]
	return id, ok, nil
}

func (f *fakeSubjects) set(sub, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id == "" {
		delete(f.ids, sub)
	} else {
		f.ids[sub] = id
	}
}

func TestSubjectCacheTTLs(t *testing.T) {
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	origin := &fakeSubjects{ids: map[string]string{"s1": subUserA}}
	c := NewSubjectCache(origin, SubjectCacheOptions{TTL: time.Minute, NegativeTTL: time.Second, Size: 10, Now: clock.Now})
	mustSub(t, c, "s1", subUserA, true)
	mustSub(t, c, "s2", "", false)
	origin.set("s1", subUserB)
	origin.set("s2", subUserA)
	mustSub(t, c, "s1", subUserA, true) // cached
	mustSub(t, c, "s2", "", false)
	if n := origin.calls.Load(); n != 2 {
		t.Fatalf("%d origin calls, want 2", n)
	}
	clock.Advance(time.Second)
	mustSub(t, c, "s1", subUserA, true) // positive TTL runs still
	mustSub(t, c, "s2", subUserA, true) // negative TTL over
	clock.Advance(time.Minute)
	mustSub(t, c, "s1", subUserB, true)
	// Invalidate and Purge.
	origin.set("s1", "")
	c.Invalidate("s1")
	mustSub(t, c, "s1", "", false)
	origin.set("s2", subUserB)
	c.Purge()
	mustSub(t, c, "s2", subUserB, true)
	// The empty subject never reaches the origin.
	before := origin.calls.Load()
	mustSub(t, c, "", "", false)
	if origin.calls.Load() != before {
		t.Error("the empty subject was asked of the origin")
	}
}

func TestSubjectCacheErrorsNotCached(t *testing.T) {
	origin := &fakeSubjects{ids: map[string]string{"s1": subUserA}, err: fmt.Errorf("fake: %w", ErrUnavailable)}
	c := NewSubjectCache(origin, SubjectCacheOptions{})
	for range 2 {
		id, found, err := c.UserBySub(t.Context(), "s1")
		if !errors.Is(err, ErrUnavailable) || found || id != "" {
			t.Fatalf("origin down: %q, %v, %v; want ErrUnavailable and no user", id, found, err)
		}
	}
	if origin.calls.Load() != 2 {
		t.Fatalf("%d origin calls: an error was cached", origin.calls.Load())
	}
	origin.mu.Lock()
	origin.err = nil
	origin.mu.Unlock()
	mustSub(t, c, "s1", subUserA, true)
	// A cancelled caller gets no answer, even for a subject the origin knows.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c.Purge()
	if _, found, err := c.UserBySub(ctx, "s1"); found || !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cancelled caller: %v, %v", found, err)
	}
}

func TestSubjectCacheSingleFlightAndDeadlines(t *testing.T) {
	gate := make(chan struct{})
	origin := &fakeSubjects{ids: map[string]string{"s1": subUserA}, gate: gate}
	c := NewSubjectCache(origin, SubjectCacheOptions{LookupTimeout: 10 * time.Second})
	// A caller with a short deadline leaves; the flight goes on for the
	// others.
	short, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, found, err := c.UserBySub(short, "s1"); found || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller past its deadline: %v, %v", found, err)
	}
	type res struct {
		id    string
		found bool
		err   error
	}
	out := make(chan res, 8)
	for range 8 {
		go func() {
			id, found, err := c.UserBySub(t.Context(), "s1")
			out <- res{id, found, err}
		}()
	}
	// Let the callers join the flight, then release it.
	deadline := time.Now().Add(5 * time.Second)
	for origin.calls.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(gate)
	for range 8 {
		r := recv(t, out)
		if r.err != nil || !r.found || r.id != subUserA {
			t.Fatalf("waiter got %+v", r)
		}
	}
	if n := origin.calls.Load(); n != 1 {
		t.Errorf("%d origin calls for concurrent misses of one subject, want 1", n)
	}
}

func TestSubjectCacheInvalidateDuringFlight(t *testing.T) {
	gate := make(chan struct{})
	origin := &fakeSubjects{ids: map[string]string{"s1": subUserA}, gate: gate}
	c := NewSubjectCache(origin, SubjectCacheOptions{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = c.UserBySub(context.Background(), "s1")
	}()
	for origin.calls.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	origin.set("s1", subUserB)
	c.Invalidate("s1")
	close(gate)
	recv(t, done)
	origin.mu.Lock()
	origin.gate = nil
	origin.mu.Unlock()
	mustSub(t, c, "s1", subUserB, true)
}

// BenchmarkSubjectCacheHit: a cached subject, the path of every request
// after the first.
func BenchmarkSubjectCacheHit(b *testing.B) {
	c := NewSubjectCache(&fakeSubjects{ids: map[string]string{"s1": subUserA}}, SubjectCacheOptions{})
	ctx := context.Background()
	if _, _, err := c.UserBySub(ctx, "s1"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, found, _ := c.UserBySub(ctx, "s1"); !found {
			b.Fatal("not found")
		}
	}
}
