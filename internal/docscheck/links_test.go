package docscheck

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// repoRoot is the repository's top directory, seen from this package.
const repoRoot = "../.."

// TestDocLinks checks every relative link of the repository's Markdown:
// the file (or directory) it names exists, and an anchor into a Markdown
// file names one of its headings. A moved section must take its links along.
func TestDocLinks(t *testing.T) {
	files := markdownFiles(t, repoRoot)
	for _, must := range []string{"README.md", "docs/design.md"} {
		if !slices.Contains(files, must) {
			t.Fatalf("%s not found among the Markdown files %v", must, files)
		}
	}
	c := newChecker(repoRoot)
	checked := 0
	for _, f := range files {
		text, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range markdownLinks(string(text)) {
			checked++
			if problem := c.check(f, l.target); problem != "" {
				t.Errorf("%s:%d: link %q: %s", f, l.line, l.target, problem)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative link found: the link scanner is broken")
	}
}

// TestGoCommentDocRefs checks the documentation that Go files cite in
// comments and messages ("docs/design.md#token-verification",
// "README.md#command-line"): the file exists and so does the heading.
func TestGoCommentDocRefs(t *testing.T) {
	c := newChecker(repoRoot)
	checked := 0
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if skipDir(d.Name()) && p != repoRoot {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || filepath.Base(filepath.Dir(p)) == "docscheck" {
			return nil // this package's own fixtures cite files that do not exist
		}
		text, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		for i, line := range strings.Split(string(text), "\n") {
			for _, m := range goDocRef.FindAllStringSubmatch(line, -1) {
				checked++
				// Go files cite documents by their path from the repository's
				// top, whatever directory the Go file is in.
				if problem := c.check("", m[1]); problem != "" {
					t.Errorf("%s:%d: reference %q: %s", filepath.ToSlash(rel), i+1, m[1], problem)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no documentation reference found in Go files: the scanner is broken")
	}
}

// goDocRef finds a citation of a top-level document in Go source. The
// document name must be preceded by a non-path character, so that
// "examples/nginx/README.md" is not read as the top-level README.
var goDocRef = regexp.MustCompile(`(?:^|[^\w./-])((?:README|docs/[\w-]+)\.md(?:#[\w-]+)?)`)

// TestCheckerFindsBrokenLinks runs the checker on a small tree with one
// good and several broken links of each kind, so that a checker that
// accepted everything would fail here.
func TestCheckerFindsBrokenLinks(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", "# Top\n\n## The decision\n\n## Envoy `http_service` (gRPC)\n\n## Dup\n\n## Dup\n")
	write("docs/a.md", strings.Join([]string{
		"# A",
		"[ok](../README.md#the-decision)",
		"[ok](../README.md#envoy-http_service-grpc)",
		"[ok](../README.md#dup-1)",
		"[ok](#a)",
		"[ok](b.md)",
		"[ok](https://example.com/x#y)",
		"[missing file](c.md)",
		"[missing anchor](../README.md#decision)",
		"[missing local anchor](#b)",
		"[third dup](../README.md#dup-2)",
		"`[in code](nowhere.md)`",
		"```",
		"[in a fence](nowhere.md)",
		"```",
	}, "\n"))
	write("docs/b.md", "# B\n")

	c := newChecker(dir)
	var problems []string
	for _, l := range markdownLinks(mustRead(t, filepath.Join(dir, "docs", "a.md"))) {
		if p := c.check("docs/a.md", l.target); p != "" {
			problems = append(problems, l.target)
		}
	}
	want := []string{"c.md", "../README.md#decision", "#b", "../README.md#dup-2"}
	if !slices.Equal(problems, want) {
		t.Errorf("broken links found = %q, want %q", problems, want)
	}
}

func TestAnchor(t *testing.T) {
	for heading, want := range map[string]string{
		"Routes, public paths and scopes":                                                "routes-public-paths-and-scopes",
		"HTTP forward-auth (nginx, ingress-nginx, Traefik, Caddy, Envoy `http_service`)": "http-forward-auth-nginx-ingress-nginx-traefik-caddy-envoy-http_service",
		"Deploying: image, Helm, Envoy, Istio":                                           "deploying-image-helm-envoy-istio",
		"The built-in table `meet`":                                                      "the-built-in-table-meet",
		"Method (`make load`)":                                                           "method-make-load",
		"Differences from Meet":                                                          "differences-from-meet",
		"[Linked](x.md) heading":                                                         "linked-heading",
	} {
		if got := anchor(heading); got != want {
			t.Errorf("anchor(%q) = %q, want %q", heading, got, want)
		}
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// skipDir reports whether a directory holds no documentation of ours.
func skipDir(name string) bool {
	return strings.HasPrefix(name, ".") || name == "bin" || name == "node_modules" || name == "testdata"
}

// markdownFiles lists the Markdown files under root, as slash paths
// relative to it.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && skipDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type link struct {
	line   int
	target string
}

var (
	// inlineLink matches [text](target) and [text](target "title").
	inlineLink = regexp.MustCompile(`\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// refDef matches a reference definition: [name]: target.
	refDef   = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$`)
	codeSpan = regexp.MustCompile("`+[^`]*`+")
	scheme   = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// markdownLinks returns the relative links of a Markdown text, outside code
// blocks and code spans.
func markdownLinks(text string) []link {
	var out []link
	fence := ""
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		line = codeSpan.ReplaceAllString(line, "")
		var targets []string
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			targets = append(targets, m[1])
		}
		if m := refDef.FindStringSubmatch(line); m != nil {
			targets = append(targets, m[1])
		}
		for _, tg := range targets {
			if scheme.MatchString(tg) || strings.HasPrefix(tg, "//") {
				continue // external: http:, https:, mailto:
			}
			out = append(out, link{line: i + 1, target: tg})
		}
	}
	return out
}

// checker resolves links against a tree, caching each Markdown file's
// anchors.
type checker struct {
	root    string
	anchors map[string]map[string]bool
}

func newChecker(root string) *checker {
	return &checker{root: root, anchors: map[string]map[string]bool{}}
}

// check returns what is wrong with target, a link written in the Markdown
// file from (a slash path relative to the root; "" resolves from the root),
// or "" when it resolves.
func (c *checker) check(from, target string) string {
	file, frag, _ := strings.Cut(target, "#")
	var p string
	switch {
	case file == "" && from == "":
		return "no file"
	case file == "":
		p = from
	case strings.HasPrefix(file, "/"):
		p = path.Clean(strings.TrimPrefix(file, "/"))
	default:
		p = path.Join(path.Dir(from), file)
	}
	if p == ".." || strings.HasPrefix(p, "../") {
		return "points outside the repository"
	}
	st, err := os.Stat(filepath.Join(c.root, filepath.FromSlash(p)))
	if err != nil {
		return fmt.Sprintf("%s does not exist", p)
	}
	if frag == "" || st.IsDir() || !strings.HasSuffix(p, ".md") {
		return ""
	}
	anchors, err := c.anchorsOf(p)
	if err != nil {
		return err.Error()
	}
	if !anchors[frag] {
		return fmt.Sprintf("%s has no heading with anchor #%s", p, frag)
	}
	return ""
}

var heading = regexp.MustCompile(`^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)

// anchorsOf returns the anchors GitHub gives the headings of a Markdown
// file (fenced code is not scanned: a "#" comment there is no heading).
func (c *checker) anchorsOf(p string) (map[string]bool, error) {
	if a, ok := c.anchors[p]; ok {
		return a, nil
	}
	text, err := os.ReadFile(filepath.Join(c.root, filepath.FromSlash(p)))
	if err != nil {
		return nil, err
	}
	a := map[string]bool{}
	seen := map[string]int{}
	fence := ""
	for _, line := range strings.Split(string(text), "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		slug := anchor(m[2])
		if n := seen[slug]; n > 0 {
			a[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			a[slug] = true
		}
		seen[slug]++
	}
	c.anchors[p] = a
	return a, nil
}

// mdLinkText replaces [text](target) with text, as GitHub slugs the
// rendered heading.
var mdLinkText = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)

// anchor is GitHub's anchor of a heading: the rendered text lower-cased,
// every character but letters, digits, spaces, "-" and "_" removed, spaces
// replaced by "-".
func anchor(h string) string {
	h = mdLinkText.ReplaceAllString(h, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
