package userstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-authz/gatehouse/internal/testkit"
)

// lowerUUID is a stand-in for the decision core's UUID normaliser: it accepts
// 36-character ids with dashes and lower-cases them.
func lowerUUID(s string) (string, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return "", false
	}
	return strings.ToLower(s), true
}

func mustStatus(t *testing.T, d Directory, kind Kind, id string, want Status) {
	t.Helper()
	got, err := d.Lookup(context.Background(), kind, id)
	if err != nil {
		t.Fatalf("Lookup(%s, %q): %v", kind, id, err)
	}
	if got != want {
		t.Fatalf("Lookup(%s, %q) = %s, want %s", kind, id, got, want)
	}
}

func TestNewMemory(t *testing.T) {
	m := NewMemory(
		[]Record{{ID: "u1", Active: true}, {ID: "u2"}},
		[]Record{{ID: "meet-web", Active: true}},
	)
	mustStatus(t, m, User, "u1", Active)
	mustStatus(t, m, User, "u2", Inactive)
	mustStatus(t, m, User, "u3", NotFound)
	mustStatus(t, m, App, "meet-web", Active)
	// Tables are separate: a user id is not an app id.
	mustStatus(t, m, App, "u1", NotFound)
	mustStatus(t, m, User, "meet-web", NotFound)
	if _, err := m.Lookup(context.Background(), Kind(9), "u1"); err == nil {
		t.Fatal("unknown kind: want an error")
	}
}

func TestNewMemoryFrom(t *testing.T) {
	opts := MemoryOptions{NormalizeUserID: lowerUUID}
	m, err := NewMemoryFrom([]Record{{ID: "3F2504E0-4F89-11D3-9A0C-0305E82C3301", Active: true}}, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, m, User, "3f2504e0-4f89-11d3-9a0c-0305e82c3301", Active)

	for name, tc := range map[string]struct {
		users, apps []Record
		want        string
	}{
		"dup after normalising": {users: []Record{
			{ID: "3F2504E0-4F89-11D3-9A0C-0305E82C3301"}, {ID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301"}}, want: "users[1]: duplicate user id"},
		"rejected": {users: []Record{{ID: "not-a-uuid"}}, want: `users[0]: invalid user id "not-a-uuid"`},
		"empty":    {apps: []Record{{ID: "a"}, {ID: ""}}, want: "apps[1]: empty app id"},
		"dup app":  {apps: []Record{{ID: "a"}, {ID: "a"}}, want: "apps[1]: duplicate app id"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewMemoryFrom(tc.users, tc.apps, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestMemoryPutDelete(t *testing.T) {
	m, err := NewMemoryFrom(nil, nil, MemoryOptions{NormalizeUserID: lowerUUID})
	if err != nil {
		t.Fatal(err)
	}
	const upper, lower = "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	if err := m.Put(User, Record{ID: upper, Active: true, Email: "a@example.com"}); err != nil {
		t.Fatal(err)
	}
	mustStatus(t, m, User, lower, Active)
	if r, ok := m.Get(User, lower); !ok || r.Email != "a@example.com" || r.ID != lower {
		t.Fatalf("Get = %+v, %v", r, ok)
	}
	if err := m.Put(User, Record{ID: lower, Active: false}); err != nil {
		t.Fatal(err)
	}
	mustStatus(t, m, User, lower, Inactive)
	if m.Len(User) != 1 {
		t.Fatalf("Len = %d, want 1", m.Len(User))
	}
	m.Delete(User, upper)
	mustStatus(t, m, User, lower, NotFound)
	if err := m.Put(User, Record{ID: "bad"}); err == nil {
		t.Fatal("Put with a rejected id: want an error")
	}
	if err := m.Put(Kind(0), Record{ID: "x"}); err == nil {
		t.Fatal("Put with an unknown kind: want an error")
	}
}

func TestMemoryConcurrent(t *testing.T) {
	m := NewMemory(nil, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				id := string(rune('a' + (g+i)%26))
				switch i % 3 {
				case 0:
					if err := m.Put(User, Record{ID: id, Active: true}); err != nil {
						t.Error(err)
						return
					}
				case 1:
					m.Delete(User, id)
				default:
					if _, err := m.Lookup(context.Background(), User, id); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := m.Len(User); n > 26 {
		t.Fatalf("Len = %d, more records than ids", n)
	}
}

func TestLoadFileShapes(t *testing.T) {
	opts := MemoryOptions{NormalizeUserID: lowerUUID}
	const u1, u2 = "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	for _, tc := range []struct{ name, content string }{
		{"list.json", `[{"id":"3F2504E0-4F89-11D3-9A0C-0305E82C3301","active":true,"email":"a@example.com"},
		  {"id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","active":false}]`},
		{"obj.json", `{"users":[{"id":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","active":true},
		  {"id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","active":false}],
		  "apps":[{"id":"meet-web","active":true}]}`},
		{"list.yaml", "- id: 3F2504E0-4F89-11D3-9A0C-0305E82C3301\n  active: true\n  email: a@example.com\n" +
			"- {id: 6ba7b810-9dad-11d1-80b4-00c04fd430c8, active: false}\n"},
		{"obj.YML", "users:\n  - {id: 3f2504e0-4f89-11d3-9a0c-0305e82c3301, active: true}\n" +
			"  - {id: 6ba7b810-9dad-11d1-80b4-00c04fd430c8, active: false}\napps:\n  - {id: meet-web, active: true}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := LoadFile(testkit.WriteFile(t, tc.name, tc.content), opts)
			if err != nil {
				t.Fatal(err)
			}
			mustStatus(t, m, User, u1, Active)
			mustStatus(t, m, User, u2, Inactive)
			mustStatus(t, m, User, "meet-web", NotFound)
			if strings.HasPrefix(tc.name, "obj") {
				mustStatus(t, m, App, "meet-web", Active)
			}
			if strings.HasPrefix(tc.name, "list") {
				if r, _ := m.Get(User, u1); r.Email != "a@example.com" {
					t.Fatalf("email = %q", r.Email)
				}
			}
		})
	}
}

func TestLoadFileWithoutNormaliserKeepsIDs(t *testing.T) {
	m, err := LoadFile(testkit.WriteFile(t, "d.json", `[{"id":"ABC","active":true}]`))
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, m, User, "ABC", Active)
	mustStatus(t, m, User, "abc", NotFound)
}

func TestLoadFileErrors(t *testing.T) {
	opts := MemoryOptions{NormalizeUserID: lowerUUID}
	for _, tc := range []struct{ name, content, want string }{
		{"unknown.json", `[{"id":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","active":true,"admin":true}]`, `unknown field "admin"`},
		{"unknowntop.json", `{"users":[],"groups":[]}`, `unknown field "groups"`},
		{"unknown.yaml", "- id: 3f2504e0-4f89-11d3-9a0c-0305e82c3301\n  active: true\n  admin: true\n", "field admin not found"},
		{"dup.json", `[{"id":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","active":true},{"id":"3F2504E0-4F89-11D3-9A0C-0305E82C3301","active":false}]`, "users[1]: duplicate user id"},
		{"dup.yaml", "users:\n  - {id: 3f2504e0-4f89-11d3-9a0c-0305e82c3301, active: true}\n  - {id: 3f2504e0-4f89-11d3-9a0c-0305e82c3301, active: true}\n", "line 3: users[1]: duplicate user id"},
		{"dupapp.yaml", "apps:\n  - {id: a, active: true}\n  - {id: a, active: true}\n", "line 3: apps[1]: duplicate app id"},
		{"bad.yaml", "- {id: 3f2504e0-4f89-11d3-9a0c-0305e82c3301, active: true}\n- {id: nope, active: true}\n", `line 2: users[1]: invalid user id "nope"`},
		{"bad.json", `[{"id":"nope","active":true}]`, `users[0]: invalid user id "nope"`},
		{"noactive.json", `[{"id":"3f2504e0-4f89-11d3-9a0c-0305e82c3301"}]`, `users[0]: missing field "active"`},
		{"empty.json", "  \n", "empty file"},
		{"empty.yaml", "", "empty file"},
		{"scalar.yaml", "hello\n", "want a list of users"},
		{"trailing.json", `[] []`, "unexpected data"},
		{"two.yaml", "[]\n---\n[]\n", "more than one document"},
		{"syntax.json", `[{"id":`, "decode JSON"},
		{"dir.txt", `[]`, `unsupported extension ".txt"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testkit.WriteFile(t, tc.name, tc.content)
			m, err := LoadFile(p, opts)
			if err == nil {
				t.Fatalf("LoadFile succeeded (%d users), want error containing %q", m.Len(User), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v\nwant it to contain %q and the path", err, tc.want)
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "nope.json"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want os.ErrNotExist", err)
	}
}

func TestLoadFileTooManyOptions(t *testing.T) {
	p := testkit.WriteFile(t, "d.json", `[]`)
	if _, err := LoadFile(p, MemoryOptions{}, MemoryOptions{}); err == nil {
		t.Fatal("two MemoryOptions: want an error")
	}
}
