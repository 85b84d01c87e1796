package deploycheck

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dfparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/buildkit/frontend/dockerui"
	digest "github.com/opencontainers/go-digest"
	appsv1 "k8s.io/api/apps/v1"
)

// The Dockerfile is checked with BuildKit's own code: its linter (what
// `docker build --check` runs) for the Dockerfile's form, and its parser for
// the few properties that tie the image to the rest of the repository (the
// Go version, the user the chart runs as, the ports, the version stamp).
// No Docker engine runs here; base images are not pulled (offlineImages).

// offlineImages answers BuildKit's image look-ups with an empty image
// configuration, so that linting needs no registry.
type offlineImages struct{}

func (offlineImages) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{}}`)
	return ref, digest.FromBytes(cfg), cfg, nil
}

// lintDockerfile runs BuildKit's Dockerfile checks on dt and returns one
// line per warning, and the error that stops a build, if any.
func lintDockerfile(t *testing.T, dt []byte) []string {
	t.Helper()
	sm := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", dt)
	sm.Definition = &llb.Definition{}
	res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{
		SourceMap:    sm,
		MetaResolver: offlineImages{},
		Config:       dockerui.Config{BuildArgs: map[string]string{}},
	})
	if err != nil {
		t.Fatalf("lint the Dockerfile: %v", err)
	}
	var out []string
	for _, w := range res.Warnings {
		line := 0
		if len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		out = append(out, fmt.Sprintf("line %d: %s: %s", line, w.RuleName, w.Detail))
	}
	if res.Error != nil {
		out = append(out, "build error: "+res.Error.Message)
	}
	return out
}

// TestDockerfileLint: the Dockerfile passes BuildKit's checks.
func TestDockerfileLint(t *testing.T) {
	for _, w := range lintDockerfile(t, readRepoFile(t, "Dockerfile")) {
		t.Error(w)
	}
}

// TestDockerfileLintFinds keeps the lint test honest: the linter runs and
// reports what it should on a Dockerfile with known faults.
func TestDockerfileLintFinds(t *testing.T) {
	got := strings.Join(lintDockerfile(t, []byte("from golang AS build\nFROM scratch\nENTRYPOINT /gatehouse serve\n")), "\n")
	for _, rule := range []string{"FromAsCasing", "JSONArgsRecommended"} {
		if !strings.Contains(got, rule) {
			t.Errorf("the linter did not report %s; it reported:\n%s", rule, got)
		}
	}
}

// image is what the checks below read from the Dockerfile.
type image struct {
	stages []instructions.Stage
	args   map[string]string // global ARG defaults
}

func parseImage(t *testing.T) *image {
	t.Helper()
	res, err := dfparser.Parse(bytes.NewReader(readRepoFile(t, "Dockerfile")))
	if err != nil {
		t.Fatalf("parse the Dockerfile: %v", err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("parse the Dockerfile's instructions: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stage(s): want a build stage and a final stage", len(stages))
	}
	img := &image{stages: stages, args: map[string]string{}}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				img.args[kv.Key] = *kv.Value
			}
		}
	}
	return img
}

func (img *image) final() *instructions.Stage { return &img.stages[len(img.stages)-1] }

// expand expands the global ARGs in s as BuildKit does for FROM.
func (img *image) expand(t *testing.T, s string) string {
	t.Helper()
	lex := shell.NewLex('\\')
	res, err := lex.ProcessWordWithMatches(s, shell.EnvsFromSlice(envList(img.args)))
	if err != nil {
		t.Fatalf("expand %q: %v", s, err)
	}
	return res.Result
}

func envList(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func commands[T any](st *instructions.Stage) []T {
	var out []T
	for _, c := range st.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestDockerfileGoVersion: the build stage's Go is the minor version go.mod
// names, so that the image is built with the toolchain the tests ran.
func TestDockerfileGoVersion(t *testing.T) {
	img := parseImage(t)
	m := regexp.MustCompile(`(?m)^go (1\.[0-9]+)(\.[0-9]+)?\s*$`).FindSubmatch(readRepoFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	var bases []string
	for _, st := range img.stages[:len(img.stages)-1] {
		base := img.expand(t, st.BaseName)
		bases = append(bases, base)
		if want := "golang:" + string(m[1]); base == want || strings.HasPrefix(base, want+"-") || strings.HasPrefix(base, want+".") {
			return
		}
	}
	t.Errorf("no build stage FROM golang:%s (go.mod says go %s%s); the build stages are FROM %q", m[1], m[1], m[2], bases)
}

// TestDockerfileMatchesChart: the image runs as the numeric non-root user the
// chart's securityContext names (runAsNonRoot can only verify a numeric
// USER), and exposes the ports the chart's container declares.
func TestDockerfileMatchesChart(t *testing.T) {
	img := parseImage(t)
	final := img.final()
	d := only[appsv1.Deployment](t, render(t, ciValues("defaults")...))
	c := container(t, d)

	users := commands[*instructions.UserCommand](final)
	if len(users) == 0 {
		t.Fatal("the final stage has no USER: the image would run as root")
	}
	uid, gid, _ := strings.Cut(users[len(users)-1].User, ":")
	u, err := strconv.ParseInt(uid, 10, 64)
	if err != nil || u <= 0 {
		t.Fatalf("USER %s: want a numeric non-root uid[:gid]", users[len(users)-1].User)
	}
	psc := d.Spec.Template.Spec.SecurityContext
	if psc == nil {
		t.Fatal("the chart's pod has no securityContext")
	}
	if psc.RunAsUser == nil || *psc.RunAsUser != u {
		t.Errorf("the chart's pod runAsUser %s is not the image's USER %d", fmtInt(psc.RunAsUser), u)
	}
	if gid != "" {
		if g, err := strconv.ParseInt(gid, 10, 64); err != nil || psc.RunAsGroup == nil || *psc.RunAsGroup != g {
			t.Errorf("the chart's pod runAsGroup %s is not the image's group %s", fmtInt(psc.RunAsGroup), gid)
		}
	}

	var exposed []string
	for _, e := range commands[*instructions.ExposeCommand](final) {
		for _, p := range e.Ports {
			exposed = append(exposed, strings.TrimSuffix(p, "/tcp"))
		}
	}
	for _, p := range c.Ports {
		if !slices.Contains(exposed, strconv.Itoa(int(p.ContainerPort))) {
			t.Errorf("the chart's container port %s (%d) is not EXPOSEd by the image (EXPOSE %v)", p.Name, p.ContainerPort, exposed)
		}
	}
}

// TestDockerfileStampsVersion: the -X flags of the image's go build name
// string variables of cmd/gatehouse, so that `gatehouse version` in the
// image reports what was built (the linker ignores -X for a missing name).
func TestDockerfileStampsVersion(t *testing.T) {
	img := parseImage(t)
	var build string
	for _, st := range img.stages[:len(img.stages)-1] {
		for _, r := range commands[*instructions.RunCommand](&st) {
			if line := strings.Join(r.CmdLine, " "); strings.Contains(line, "go build") {
				build = line
			}
		}
	}
	if build == "" {
		t.Fatal("no RUN ... go build in a build stage")
	}
	flags := regexp.MustCompile(`-X main\.([A-Za-z_][A-Za-z0-9_]*)=`).FindAllStringSubmatch(build, -1)
	if len(flags) == 0 {
		t.Fatalf("go build %q stamps nothing with -X main.NAME=", build)
	}
	vars := mainStringVars(t)
	for _, f := range flags {
		if !vars[f[1]] {
			t.Errorf("go build sets main.%s, which cmd/gatehouse does not declare as a package-level string variable", f[1])
		}
	}
}

// mainStringVars returns the package-level string variables of cmd/gatehouse.
func mainStringVars(t *testing.T) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "cmd", "gatehouse", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("cmd/gatehouse: %v (%d files)", err, len(files))
	}
	vars := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				stringTyped := false
				if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "string" {
					stringTyped = true
				}
				for i, n := range vs.Names {
					isString := stringTyped
					if !isString && i < len(vs.Values) {
						lit, ok := vs.Values[i].(*ast.BasicLit)
						isString = ok && lit.Kind == token.STRING
					}
					if isString {
						vars[n.Name] = true
					}
				}
			}
		}
	}
	return vars
}

func fmtInt(p *int64) string {
	if p == nil {
		return "(unset)"
	}
	return strconv.FormatInt(*p, 10)
}
