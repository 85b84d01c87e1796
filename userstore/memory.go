package userstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// MemoryOptions tune how records enter a Memory directory.
type MemoryOptions struct {
	// NormalizeUserID, if set, rewrites every user id to its canonical form
	// before it is stored (for example a UUID to lower case), and reports
	// false for an id that is not valid. The decision core normalises ids
	// before it looks them up, so a file written with another spelling
	// still matches. A rejected id is a load error. App ids are stored as
	// written.
	NormalizeUserID func(string) (string, bool)
}

// Memory is a Directory held in process memory: the embedded default for
// development and small static setups. It is safe for concurrent use,
// including Put and Delete while lookups run.
type Memory struct {
	normalize func(string) (string, bool)

	mu    sync.RWMutex
	users map[string]Record
	apps  map[string]Record
	// subs indexes the users' subjects: sub -> user id. Every write of
	// users keeps it in step, under mu.
	subs map[string]string
}

var _ Subjects = (*Memory)(nil)

// NewMemory returns a directory holding users and apps with their ids as
// written. It does not validate: when two records share an id the later one
// wins. Use NewMemoryFrom to validate and normalise.
func NewMemory(users, apps []Record) *Memory {
	m := &Memory{users: make(map[string]Record, len(users)), apps: make(map[string]Record, len(apps)), subs: map[string]string{}}
	for _, r := range users {
		if old, ok := m.users[r.ID]; ok && old.Sub != "" && m.subs[old.Sub] == r.ID {
			delete(m.subs, old.Sub)
		}
		m.users[r.ID] = r
		if r.Sub != "" {
			m.subs[r.Sub] = r.ID
		}
	}
	for _, r := range apps {
		m.apps[r.ID] = r
	}
	return m
}

// NewMemoryFrom returns a directory holding users and apps after checking
// them: an empty id, a duplicate id (after normalisation), a user id the
// normaliser rejects, an invalid or duplicate sub, or an app with a sub is
// an error naming the record's index.
func NewMemoryFrom(users, apps []Record, opts MemoryOptions) (*Memory, error) {
	m := &Memory{
		normalize: opts.NormalizeUserID,
		users:     make(map[string]Record, len(users)),
		apps:      make(map[string]Record, len(apps)),
		subs:      map[string]string{},
	}
	for i, r := range users {
		if err := m.add(User, r); err != nil {
			return nil, fmt.Errorf("users[%d]: %w", i, err)
		}
	}
	for i, r := range apps {
		if err := m.add(App, r); err != nil {
			return nil, fmt.Errorf("apps[%d]: %w", i, err)
		}
	}
	return m, nil
}

// add inserts a new record, refusing duplicates. Only used while building.
func (m *Memory) add(kind Kind, r Record) error {
	r, err := m.canonical(kind, r)
	if err != nil {
		return err
	}
	table := m.table(kind)
	if _, dup := table[r.ID]; dup {
		return fmt.Errorf("duplicate %s id %q", kind, r.ID)
	}
	if other, dup := m.subs[r.Sub]; dup && r.Sub != "" {
		// The sub itself is left out: it identifies a person to the
		// identity provider; the other record's id is enough to find it.
		return fmt.Errorf("user %q: duplicate sub (user %q has it already)", r.ID, other)
	}
	table[r.ID] = r
	if r.Sub != "" {
		m.subs[r.Sub] = r.ID
	}
	return nil
}

func (m *Memory) canonical(kind Kind, r Record) (Record, error) {
	if kind != User && kind != App {
		return r, fmt.Errorf("userstore: unknown kind %d", kind)
	}
	if r.ID == "" {
		return r, fmt.Errorf("empty %s id", kind)
	}
	if kind == User && m.normalize != nil {
		id, ok := m.normalize(r.ID)
		if !ok {
			return r, fmt.Errorf("invalid user id %q", r.ID)
		}
		r.ID = id
	}
	if r.Sub != "" {
		if kind != User {
			return r, fmt.Errorf("app %q has a sub: only users have one", r.ID)
		}
		if err := CheckSub(r.Sub); err != nil {
			return r, fmt.Errorf("user %q: %w", r.ID, err)
		}
	}
	return r, nil
}

// table returns the map for kind; the caller holds m.mu or owns m.
func (m *Memory) table(kind Kind) map[string]Record {
	if kind == App {
		return m.apps
	}
	return m.users
}

// Lookup implements Directory. It never fails for a known kind: memory
// cannot be unavailable.
func (m *Memory) Lookup(_ context.Context, kind Kind, id string) (Status, error) {
	if kind != User && kind != App {
		return NotFound, fmt.Errorf("userstore: unknown kind %d", kind)
	}
	m.mu.RLock()
	r, ok := m.table(kind)[id]
	m.mu.RUnlock()
	switch {
	case !ok:
		return NotFound, nil
	case r.Active:
		return Active, nil
	default:
		return Inactive, nil
	}
}

// Get returns the stored record for id.
func (m *Memory) Get(kind Kind, id string) (Record, bool) {
	if kind != User && kind != App {
		return Record{}, false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, ok := m.table(kind)[id]
	return r, ok
}

// Put adds or replaces a record, normalising a user id like the loader does.
// A user's sub moves with the record: the old one no longer finds the user.
// A sub another user has is an error, and nothing is written.
func (m *Memory) Put(kind Kind, r Record) error {
	r, err := m.canonical(kind, r)
	if err != nil {
		return fmt.Errorf("userstore: put: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if kind == User {
		if other, taken := m.subs[r.Sub]; taken && r.Sub != "" && other != r.ID {
			return fmt.Errorf("userstore: put: user %q: sub already belongs to user %q", r.ID, other)
		}
		m.unindex(r.ID)
		if r.Sub != "" {
			m.subs[r.Sub] = r.ID
		}
	}
	m.table(kind)[r.ID] = r
	return nil
}

// unindex removes the sub of the stored user id from the index; the caller
// holds m.mu for writing.
func (m *Memory) unindex(id string) {
	if old, ok := m.users[id]; ok && old.Sub != "" && m.subs[old.Sub] == id {
		delete(m.subs, old.Sub)
	}
}

// Delete removes a record; deleting an absent record is not an error. A user
// id is normalised like Put does, so Put and Delete accept the same spellings.
// (Lookup and Get take canonical ids: normalising is the caller's job on the
// request path.)
func (m *Memory) Delete(kind Kind, id string) {
	r, err := m.canonical(kind, Record{ID: id})
	if err != nil {
		return // unknown kind, empty or invalid id: nothing stored under it
	}
	id = r.ID
	m.mu.Lock()
	if kind == User {
		m.unindex(id)
	}
	delete(m.table(kind), id)
	m.mu.Unlock()
}

// UserBySub implements Subjects. Like Lookup it never fails: the index is
// checked when records enter, so no entry can be malformed.
func (m *Memory) UserBySub(_ context.Context, sub string) (string, bool, error) {
	if sub == "" {
		return "", false, nil
	}
	m.mu.RLock()
	id, ok := m.subs[sub]
	m.mu.RUnlock()
	return id, ok, nil
}

// Len returns the number of records of kind.
func (m *Memory) Len(kind Kind) int {
	if kind != User && kind != App {
		return 0
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.table(kind))
}

// fileRecord is Record as written in a file. Active is a pointer so that a
// forgotten "active" is an error rather than a silently disabled user.
type fileRecord struct {
	ID     string `json:"id" yaml:"id"`
	Active *bool  `json:"active" yaml:"active"`
	Email  string `json:"email,omitempty" yaml:"email,omitempty"`
	Sub    string `json:"sub,omitempty" yaml:"sub,omitempty"`
}

type fileTables struct {
	Users []fileRecord `json:"users" yaml:"users"`
	Apps  []fileRecord `json:"apps" yaml:"apps"`
}

// LoadFile reads a directory file, JSON (".json") or YAML (".yaml", ".yml"),
// chosen by extension. Two shapes are accepted:
//
//	# a list of user records
//	- {id: 3f2504e0-4f89-11d3-9a0c-0305e82c3301, active: true, email: ann@example.com}
//	- {id: 6ba7b810-9dad-11d1-80b4-00c04fd430c8, active: false}
//
//	# or an object with users and applications
//	users:
//	  - {id: 3f2504e0-4f89-11d3-9a0c-0305e82c3301, active: true}
//	apps:
//	  - {id: meet-web, active: true}
//
// Every record needs "id" and "active"; "email" is optional, and so is
// "sub" (users only: the OIDC subject that finds the user, see Subjects).
// Unknown fields, missing fields, empty or duplicate ids, user ids rejected
// by opts.NormalizeUserID, invalid or duplicate subs and apps with a sub are
// errors naming the file and the record. At most one
// MemoryOptions may be given.
func LoadFile(path string, opts ...MemoryOptions) (*Memory, error) {
	if len(opts) > 1 {
		return nil, fmt.Errorf("userstore: load %s: more than one MemoryOptions", path)
	}
	var o MemoryOptions
	if len(opts) == 1 {
		o = opts[0]
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("userstore: load directory file: %w", err)
	}
	var tables fileTables
	var lines map[*fileRecord]int // YAML only: record -> line, for errors
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".json":
		tables, err = decodeJSON(data)
	case ".yaml", ".yml":
		tables, lines, err = decodeYAML(data)
	default:
		err = fmt.Errorf("unsupported extension %q (want .json, .yaml or .yml)", ext)
	}
	if err != nil {
		return nil, fmt.Errorf("userstore: load %s: %w", path, err)
	}
	m := &Memory{
		normalize: o.NormalizeUserID,
		users:     make(map[string]Record, len(tables.Users)),
		apps:      make(map[string]Record, len(tables.Apps)),
		subs:      map[string]string{},
	}
	for _, t := range []struct {
		name string
		kind Kind
		recs []fileRecord
	}{{"users", User, tables.Users}, {"apps", App, tables.Apps}} {
		for i := range t.recs {
			fr := &t.recs[i]
			err := func() error {
				if fr.Active == nil {
					return errors.New(`missing field "active"`)
				}
				return m.add(t.kind, Record{ID: fr.ID, Active: *fr.Active, Email: fr.Email, Sub: fr.Sub})
			}()
			if err != nil {
				where := fmt.Sprintf("%s[%d]", t.name, i)
				if line, ok := lines[fr]; ok {
					where = fmt.Sprintf("line %d: %s", line, where)
				}
				return nil, fmt.Errorf("userstore: load %s: %s: %w", path, where, err)
			}
		}
	}
	return m, nil
}

func decodeJSON(data []byte) (fileTables, error) {
	var t fileTables
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return t, errors.New("empty file")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var err error
	if trimmed[0] == '[' {
		err = dec.Decode(&t.Users)
	} else {
		err = dec.Decode(&t)
	}
	if err != nil {
		return t, fmt.Errorf("decode JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return t, errors.New("decode JSON: unexpected data after the top-level value")
	}
	return t, nil
}

// decodeYAML decodes strictly, then walks the node tree once more to learn
// each record's line for error messages.
func decodeYAML(data []byte) (fileTables, map[*fileRecord]int, error) {
	var t fileTables
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return t, nil, fmt.Errorf("decode YAML: %w", err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 {
		return t, nil, errors.New("empty file")
	}
	doc := root.Content[0]
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var err error
	switch doc.Kind {
	case yaml.SequenceNode:
		err = dec.Decode(&t.Users)
	case yaml.MappingNode:
		err = dec.Decode(&t)
	default:
		return t, nil, fmt.Errorf("line %d: want a list of users or a mapping with users and apps", doc.Line)
	}
	if err != nil {
		return t, nil, fmt.Errorf("decode YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return t, nil, errors.New("decode YAML: more than one document")
	}
	lines := make(map[*fileRecord]int)
	mark := func(seq *yaml.Node, recs []fileRecord) {
		if seq == nil || seq.Kind != yaml.SequenceNode {
			return
		}
		for i := range recs {
			if i < len(seq.Content) {
				lines[&recs[i]] = seq.Content[i].Line
			}
		}
	}
	if doc.Kind == yaml.SequenceNode {
		mark(doc, t.Users)
	} else {
		for i := 0; i+1 < len(doc.Content); i += 2 {
			switch doc.Content[i].Value {
			case "users":
				mark(doc.Content[i+1], t.Users)
			case "apps":
				mark(doc.Content[i+1], t.Apps)
			}
		}
	}
	return t, lines, nil
}
