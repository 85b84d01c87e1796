package routes

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads a routes file. Its table is named by the file's "name" key, or
// else by the file's base name without extension.
func Load(path string) (*Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return Parse(path, base, data)
}

// Parse compiles a routes file's content. file names it in errors; name is
// the table's name when the file sets none. Every error names the file, the
// line and the key.
//
//	name: things            # optional
//	include: meet           # optional: the built-in meet table's routes and prefix come first
//	routes:                 # first match wins
//	  - path: /healthz      # exact; or prefix: /docs/ ; or regex: ^/api/v[0-9]+/x$
//	    methods: [GET]      # optional: the route applies to these methods only
//	    public: true        # or scope: S, or deny: true, or actions, or nothing (authenticate)
//	  - prefix: /api/things/
//	    actions:            # method -> required scope; unlisted methods: unknown action
//	      GET: things:read  # HEAD follows GET unless listed
//	prefixes:               # optional: what unmatched requests under a prefix get (longest wins)
//	  /api/: unknown-action
//	default: authenticate   # outside every prefix: authenticate | deny | unknown-action | public
//
// Paths and prefixes are matched against the decoded path (see the package
// comment), so they are written decoded. Methods are written upper case and
// match requests whatever their case.
func Parse(file, name string, data []byte) (*Table, error) {
	p := parser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("routes: %s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("routes: %s: empty file", file)
	}
	t, err := p.table(doc.Content[0], name)
	if err != nil {
		return nil, err
	}
	return t, nil
}

type parser struct{ file string }

func (p parser) errorf(n *yaml.Node, key, format string, args ...any) error {
	return fmt.Errorf("routes: %s:%d: %s: %s", p.file, n.Line, key, fmt.Sprintf(format, args...))
}

// fields returns a mapping's key/value pairs, refusing non-mappings and
// duplicate keys.
func (p parser) fields(n *yaml.Node, what string) ([][2]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, p.errorf(n, what, "must be a mapping")
	}
	seen := map[string]bool{}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return nil, p.errorf(k, k.Value, "duplicate key")
		}
		seen[k.Value] = true
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out, nil
}

func (p parser) str(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return "", p.errorf(n, key, "must be a string")
	}
	if n.Value == "" {
		return "", p.errorf(n, key, "must not be empty")
	}
	return n.Value, nil
}

func (p parser) boolean(n *yaml.Node, key string) (bool, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return false, p.errorf(n, key, "must be true or false")
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		return false, p.errorf(n, key, "must be true or false")
	}
	return b, nil
}

func (p parser) method(n *yaml.Node, key string) (method, error) {
	s, err := p.str(n, key)
	if err != nil {
		return 0, err
	}
	m := parseMethod(s)
	if m == mUnknown {
		return 0, p.errorf(n, key, "unknown method %q (want one of %s)", s, strings.Join(methodNames[1:], ", "))
	}
	if s != methodNames[m] {
		// Requests match whatever their case; the file says it one way so
		// that a reader never wonders whether "delete" is DELETE.
		return 0, p.errorf(n, key, "method %q must be written in upper case (%s)", s, methodNames[m])
	}
	return m, nil
}

func (p parser) table(n *yaml.Node, name string) (*Table, error) {
	fields, err := p.fields(n, "top level")
	if err != nil {
		return nil, err
	}
	t := &Table{name: name}
	var included *Table
	var own []route
	for _, kv := range fields {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "name":
			if t.name, err = p.str(v, "name"); err != nil {
				return nil, err
			}
		case "include":
			s, err := p.str(v, "include")
			if err != nil {
				return nil, err
			}
			if s != MeetTableName {
				return nil, p.errorf(v, "include", "unknown table %q (want %s)", s, MeetTableName)
			}
			included = Meet()
		case "routes":
			if v.Kind != yaml.SequenceNode {
				return nil, p.errorf(v, "routes", "must be a list")
			}
			for _, rn := range v.Content {
				r, err := p.route(rn)
				if err != nil {
					return nil, err
				}
				own = append(own, r)
			}
		case "prefixes":
			pf, err := p.fields(v, "prefixes")
			if err != nil {
				return nil, err
			}
			for _, e := range pf {
				prefix, err := p.str(e[0], "prefixes")
				if err != nil {
					return nil, err
				}
				if !strings.HasPrefix(prefix, "/") {
					return nil, p.errorf(e[0], "prefixes", "%q must start with /", prefix)
				}
				if hasEscape(prefix) {
					return nil, p.errorf(e[0], "prefixes", "%q holds a percent-escape: write the path decoded", prefix)
				}
				d, err := p.defaultValue(e[1], "prefixes."+prefix)
				if err != nil {
					return nil, err
				}
				t.prefixes = append(t.prefixes, prefixDefault{prefix: prefix, def: d})
			}
		case "default":
			if t.def, err = p.defaultValue(v, "default"); err != nil {
				return nil, err
			}
		default:
			return nil, p.errorf(k, k.Value, "unknown key (want name, include, routes, prefixes, default)")
		}
	}
	if included != nil {
		// The included table's routes come first, so that the file can add
		// routes but not weaken the ones it includes; its prefixes join the
		// file's, and redefining one is an error rather than a silent choice.
		for _, ip := range included.prefixes {
			for _, fp := range t.prefixes {
				if fp.prefix == ip.prefix {
					return nil, fmt.Errorf("routes: %s: prefixes: %s is already set by include: %s", p.file, ip.prefix, included.name)
				}
			}
		}
		t.routes = append(t.routes, included.routes...)
		t.prefixes = append(t.prefixes, included.prefixes...)
	}
	t.routes = append(t.routes, own...)
	// Longest prefix first: the most specific default wins.
	slices.SortStableFunc(t.prefixes, func(a, b prefixDefault) int { return len(b.prefix) - len(a.prefix) })
	return t, nil
}

// defaultValue reads a Default by its name.
func (p parser) defaultValue(n *yaml.Node, key string) (Default, error) {
	s, err := p.str(n, key)
	if err != nil {
		return 0, err
	}
	d, ok := parseDefault(s)
	if !ok {
		return 0, p.errorf(n, key, "unknown value %q (want authenticate, deny, unknown-action or public)", s)
	}
	return d, nil
}

func (p parser) route(n *yaml.Node) (route, error) {
	var r route
	fields, err := p.fields(n, "route")
	if err != nil {
		return r, err
	}
	var matchers, kinds []string
	for _, kv := range fields {
		k, v := kv[0], kv[1]
		switch k.Value {
		case "path", "prefix", "regex":
			matchers = append(matchers, k.Value)
			if r.pattern, err = p.str(v, k.Value); err != nil {
				return r, err
			}
			switch k.Value {
			case "path":
				r.kind = matchExact
			case "prefix":
				r.kind = matchPrefix
			case "regex":
				if err := r.compileRegex(r.pattern); err != nil {
					return r, p.errorf(v, "regex", "invalid: %v", err)
				}
			}
			if r.kind != matchRegex && !strings.HasPrefix(r.pattern, "/") {
				return r, p.errorf(v, k.Value, "must start with /")
			}
			if r.kind != matchRegex && hasEscape(r.pattern) {
				// Requests are matched decoded: an escape here could
				// never match, which would hide the route.
				return r, p.errorf(v, k.Value, "%q holds a percent-escape: write the path decoded", r.pattern)
			}
		case "methods":
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				return r, p.errorf(v, "methods", "must be a non-empty list")
			}
			for _, mn := range v.Content {
				m, err := p.method(mn, "methods")
				if err != nil {
					return r, err
				}
				r.methods |= 1 << m
			}
		case "public":
			kinds = append(kinds, k.Value)
			if r.rule.Public, err = p.boolean(v, "public"); err != nil {
				return r, err
			}
		case "deny":
			kinds = append(kinds, k.Value)
			if r.rule.Deny, err = p.boolean(v, "deny"); err != nil {
				return r, err
			}
		case "scope":
			kinds = append(kinds, k.Value)
			if r.rule.Scope, err = p.str(v, "scope"); err != nil {
				return r, err
			}
		case "actions":
			kinds = append(kinds, k.Value)
			if err := p.actions(v, &r); err != nil {
				return r, err
			}
		default:
			return r, p.errorf(k, k.Value, "unknown key (want path, prefix, regex, methods, public, deny, scope, actions)")
		}
	}
	if len(matchers) != 1 {
		return r, p.errorf(n, "route", "needs exactly one of path, prefix, regex (has %d)", len(matchers))
	}
	if len(kinds) > 1 {
		return r, p.errorf(n, "route", "public, deny, scope and actions exclude each other (has %s)", strings.Join(kinds, ", "))
	}
	return r, nil
}

func (p parser) actions(n *yaml.Node, r *route) error {
	fields, err := p.fields(n, "actions")
	if err != nil {
		return err
	}
	if len(fields) == 0 {
		return p.errorf(n, "actions", "must map at least one method to a scope")
	}
	r.byAction = true
	for _, kv := range fields {
		m, err := p.method(kv[0], "actions")
		if err != nil {
			return err
		}
		scope, err := p.str(kv[1], "actions."+kv[0].Value)
		if err != nil {
			return err
		}
		r.setAction(m, scope)
	}
	// HEAD is GET without a body: it needs GET's scope unless listed, as
	// Django REST framework maps it.
	if r.hasAction[mGET] && !r.hasAction[mHEAD] {
		r.setAction(mHEAD, r.actions[mGET])
	}
	return nil
}

// hasEscape reports whether s holds a percent-escape ("%" and two hex
// digits).
func hasEscape(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && isHex(s[i+1]) && isHex(s[i+2]) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
