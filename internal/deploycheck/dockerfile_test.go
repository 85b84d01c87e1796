package deploycheck

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// A Dockerfile instruction, after line continuations are joined.
type instruction struct {
	line  int
	cmd   string   // upper case: FROM, RUN, COPY, ...
	flags []string // leading --name=value words
	args  string   // the rest, raw
	exec  []string // args in exec (JSON array) form, nil otherwise
}

// A build stage: FROM and what follows it.
type stage struct {
	from   instruction
	base   string // the image, ARGs expanded
	name   string // AS name, "" when unnamed
	instrs []instruction
}

type dockerfile struct {
	globalArgs []instruction // ARGs before the first FROM
	stages     []stage
}

// parseDockerfile is a small parser of the Dockerfile syntax this repository
// uses: parser directives, comments, "\" continuations, flags, shell and
// exec forms. It refuses what it does not understand (heredocs, unknown
// instructions) rather than guess.
func parseDockerfile(data []byte) (*dockerfile, error) {
	known := map[string]bool{
		"FROM": true, "ARG": true, "ENV": true, "RUN": true, "COPY": true, "ADD": true,
		"WORKDIR": true, "USER": true, "EXPOSE": true, "ENTRYPOINT": true, "CMD": true,
		"LABEL": true, "HEALTHCHECK": true, "STOPSIGNAL": true, "SHELL": true, "VOLUME": true,
		"ONBUILD": true,
	}
	var (
		df       dockerfile
		lines    []string
		startAt  int
		inHeader = true
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	var instrs []instruction
	for sc.Scan() {
		n++
		raw := sc.Text()
		trimmed := strings.TrimSpace(raw)
		if inHeader && strings.HasPrefix(trimmed, "#") && strings.Contains(trimmed, "=") {
			continue // parser directive, e.g. "# syntax=docker/dockerfile:1"
		}
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue // comments and blank lines, also inside continuations
		}
		inHeader = false
		if len(lines) == 0 {
			startAt = n
		}
		if strings.HasSuffix(trimmed, "\\") {
			lines = append(lines, strings.TrimSuffix(trimmed, "\\"))
			continue
		}
		lines = append(lines, trimmed)
		full := strings.Join(lines, " ")
		lines = nil
		in, err := parseInstruction(startAt, full)
		if err != nil {
			return nil, err
		}
		if !known[in.cmd] {
			return nil, fmt.Errorf("line %d: unknown instruction %q", in.line, in.cmd)
		}
		if strings.Contains(in.args, "<<") && (in.cmd == "RUN" || in.cmd == "COPY") {
			return nil, fmt.Errorf("line %d: heredocs are not supported by this parser", in.line)
		}
		instrs = append(instrs, in)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read Dockerfile: %w", err)
	}
	if len(lines) > 0 {
		return nil, fmt.Errorf("line %d: continuation at the end of the file", startAt)
	}
	args := map[string]string{}
	for _, in := range instrs {
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			st := stage{from: in}
			switch {
			case len(f) == 1:
			case len(f) == 3 && strings.EqualFold(f[1], "AS"):
				st.name = f[2]
			default:
				return nil, fmt.Errorf("line %d: FROM %q: want IMAGE [AS NAME]", in.line, in.args)
			}
			st.base = expandVars(f[0], args)
			df.stages = append(df.stages, st)
		case len(df.stages) == 0:
			if in.cmd != "ARG" {
				return nil, fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
			}
			df.globalArgs = append(df.globalArgs, in)
			name, def, _ := strings.Cut(in.args, "=")
			args[name] = def
		default:
			st := &df.stages[len(df.stages)-1]
			st.instrs = append(st.instrs, in)
		}
	}
	if len(df.stages) == 0 {
		return nil, errors.New("no FROM instruction")
	}
	return &df, nil
}

func parseInstruction(line int, s string) (instruction, error) {
	cmd, rest, _ := strings.Cut(s, " ")
	in := instruction{line: line, cmd: strings.ToUpper(cmd)}
	rest = strings.TrimSpace(rest)
	for strings.HasPrefix(rest, "--") {
		flag, after, _ := strings.Cut(rest, " ")
		in.flags = append(in.flags, flag)
		rest = strings.TrimSpace(after)
	}
	in.args = rest
	if strings.HasPrefix(rest, "[") {
		if err := json.Unmarshal([]byte(rest), &in.exec); err != nil {
			return in, fmt.Errorf("line %d: %s looks like exec form but is not a JSON array of strings: %w", line, in.cmd, err)
		}
	}
	return in, nil
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expandVars replaces $NAME and ${NAME} with vars[NAME] ("" when unset).
func expandVars(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		name := sub[1]
		if name == "" {
			name = sub[2]
		}
		return vars[name]
	})
}

// shellWords splits a RUN command the way /bin/sh would for the simple
// commands this Dockerfile may use: words, '...' and "..." quoting, and
// $VAR expansion outside single quotes. Anything else a shell would
// interpret (;, &&, |, redirections, $(...), backquotes, globbing) is refused
// so that running the command outside Docker means the same thing.
func shellWords(s string, vars map[string]string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		inTok bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inTok {
				words = append(words, cur.String())
				cur.Reset()
				inTok = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inTok = true
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return nil, errors.New("unterminated double quote")
			}
			inner := s[i+1 : i+1+j]
			if strings.ContainsAny(inner, "`\\") || strings.Contains(inner, "$(") {
				return nil, fmt.Errorf("unsupported shell syntax in %q", inner)
			}
			cur.WriteString(expandVars(inner, vars))
			i += j + 1
			inTok = true
		case strings.IndexByte(";&|<>`\\*?(){}[]!#~", c) >= 0:
			return nil, fmt.Errorf("unsupported shell syntax %q in %q", c, s)
		case c == '$':
			loc := varRef.FindStringIndex(s[i:])
			if loc == nil || loc[0] != 0 {
				return nil, fmt.Errorf("unsupported shell syntax at %q", s[i:])
			}
			cur.WriteString(expandVars(s[i:i+loc[1]], vars))
			i += loc[1] - 1
			inTok = true
		default:
			cur.WriteByte(c)
			inTok = true
		}
	}
	if inTok {
		words = append(words, cur.String())
	}
	return words, nil
}

var envAssign = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

func loadDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	df, err := parseDockerfile(readRepoFile(t, "Dockerfile"))
	if err != nil {
		t.Fatalf("parse Dockerfile: %v", err)
	}
	return df
}

func (st *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range st.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// buildStage returns the stage the final stage copies the binary from.
func (df *dockerfile) buildStage(t *testing.T) *stage {
	t.Helper()
	final := &df.stages[len(df.stages)-1]
	for _, c := range final.all("COPY") {
		for _, f := range c.flags {
			if from, ok := strings.CutPrefix(f, "--from="); ok {
				for i := range df.stages[:len(df.stages)-1] {
					if df.stages[i].name == from {
						return &df.stages[i]
					}
				}
				t.Fatalf("line %d: COPY --from=%s names no earlier stage", c.line, from)
			}
		}
	}
	t.Fatalf("the final stage copies nothing from a build stage: not a multi-stage build")
	return nil
}

// TestDockerfileRules checks the rules of issue 6 on the Dockerfile as parsed.
func TestDockerfileRules(t *testing.T) {
	df := loadDockerfile(t)
	if len(df.stages) < 2 {
		t.Fatalf("%d stage(s): want a multi-stage build (a Go build stage and a minimal final stage)", len(df.stages))
	}
	build := df.buildStage(t)
	final := &df.stages[len(df.stages)-1]

	// The build stage: the Go toolchain of go.mod's minor version.
	m := regexp.MustCompile(`(?m)^go (1\.[0-9]+)(\.[0-9]+)?\s*$`).FindSubmatch(readRepoFile(t, "go.mod"))
	if m == nil {
		t.Fatalf("go.mod has no go directive")
	}
	if want := "golang:" + string(m[1]); build.base != want && !strings.HasPrefix(build.base, want+"-") && !strings.HasPrefix(build.base, want+".") {
		t.Errorf("build stage FROM %s: want %s (go.mod says go %s%s)", build.base, want, m[1], m[2])
	}

	// The go build command.
	var goBuild *instruction
	for _, r := range build.all("RUN") {
		if strings.Contains(r.args, "go build") {
			goBuild = &r
		}
	}
	if goBuild == nil {
		t.Fatalf("build stage: no RUN ... go build")
	}
	words, err := shellWords(goBuild.args, map[string]string{"VERSION": "V", "COMMIT": "C", "TARGETOS": "linux", "TARGETARCH": "amd64"})
	if err != nil {
		t.Fatalf("line %d: %v", goBuild.line, err)
	}
	env := map[string]string{}
	for len(words) > 0 && envAssign.MatchString(words[0]) {
		k, v, _ := strings.Cut(words[0], "=")
		env[k] = v
		words = words[1:]
	}
	if env["CGO_ENABLED"] != "0" {
		t.Errorf("line %d: go build without CGO_ENABLED=0: the binary must be static for a distroless/scratch image", goBuild.line)
	}
	if !slices.Contains(words, "-trimpath") {
		t.Errorf("line %d: go build without -trimpath", goBuild.line)
	}
	i := slices.Index(words, "-ldflags")
	switch {
	case i < 0 || i+1 >= len(words):
		t.Errorf("line %d: go build without -ldflags", goBuild.line)
	default:
		ld := strings.Fields(words[i+1])
		for _, want := range []string{"-s", "-w", "main.version=V", "main.commit=C"} {
			if !slices.Contains(ld, want) {
				t.Errorf("line %d: -ldflags %q lacks %q (the version variables are main.version and main.commit in cmd/gatehouse/version.go)", goBuild.line, words[i+1], want)
			}
		}
	}
	if !slices.Contains(words, "./cmd/gatehouse") {
		t.Errorf("line %d: go build does not build ./cmd/gatehouse: %q", goBuild.line, words)
	}
	out := ""
	if j := slices.Index(words, "-o"); j >= 0 && j+1 < len(words) {
		out = words[j+1]
	} else {
		t.Errorf("line %d: go build without -o", goBuild.line)
	}

	// The final stage: distroless static (or scratch), non-root, no shell use.
	if !regexp.MustCompile(`^(gcr\.io/distroless/static(-debian\d+)?:nonroot(@sha256:[0-9a-f]{64})?|scratch)$`).MatchString(final.base) {
		t.Errorf("final stage FROM %s: want gcr.io/distroless/static-debian12:nonroot or scratch", final.base)
	}
	for _, r := range final.all("RUN") {
		t.Errorf("line %d: RUN in the final stage: it has no shell", r.line)
	}
	users := final.all("USER")
	if len(users) == 0 {
		t.Errorf("final stage: no USER (runAsNonRoot needs a numeric non-root user in the image)")
	} else {
		u := users[len(users)-1].args
		uid, gid, _ := strings.Cut(u, ":")
		if !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(uid) || (gid != "" && !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(gid)) {
			t.Errorf("final stage USER %s: want a numeric non-root uid[:gid] such as 65532:65532", u)
		}
	}
	var exposed []string
	for _, e := range final.all("EXPOSE") {
		exposed = append(exposed, strings.Fields(e.args)...)
	}
	for _, p := range []string{"9000", "8080", "8081"} {
		if !slices.Contains(exposed, p) && !slices.Contains(exposed, p+"/tcp") {
			t.Errorf("final stage EXPOSE %v lacks %s", exposed, p)
		}
	}
	eps := final.all("ENTRYPOINT")
	if len(eps) != 1 {
		t.Fatalf("final stage: %d ENTRYPOINT instructions, want 1", len(eps))
	}
	ep := eps[0]
	if ep.exec == nil {
		t.Errorf("line %d: ENTRYPOINT %s is in shell form: use the exec form, there is no shell", ep.line, ep.args)
	} else if len(ep.exec) != 2 || path.Base(ep.exec[0]) != "gatehouse" || ep.exec[1] != "serve" {
		t.Errorf("line %d: ENTRYPOINT %q: want [\"/gatehouse\", \"serve\"]", ep.line, ep.exec)
	}
	for _, c := range final.all("CMD") {
		if c.exec == nil {
			t.Errorf("line %d: CMD in shell form", c.line)
		}
	}
	// The entrypoint is the binary the build stage produced.
	copied := false
	for _, c := range final.all("COPY") {
		f := strings.Fields(c.args)
		if len(f) == 2 && f[0] == out && ep.exec != nil && len(ep.exec) > 0 && f[1] == ep.exec[0] {
			copied = true
		}
	}
	if !copied {
		t.Errorf("the final stage does not COPY the build output %s to the ENTRYPOINT %v", out, ep.exec)
	}
}

// TestDockerfileParser keeps the parser honest on inputs it must refuse or
// read in a particular way.
func TestDockerfileParser(t *testing.T) {
	df, err := parseDockerfile([]byte("# syntax=docker/dockerfile:1\nARG V=1.2\nFROM img:${V} AS b\nRUN a \\\n  # comment\n  b\nFROM scratch\nENTRYPOINT [\"/x\", \"serve\"]\nCMD serve\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := df.stages[0].base; got != "img:1.2" {
		t.Errorf("FROM with ARG: %q", got)
	}
	if got := df.stages[0].instrs[0].args; got != "a    b" && strings.Join(strings.Fields(got), " ") != "a b" {
		t.Errorf("continuation: %q", got)
	}
	if got := df.stages[1].all("ENTRYPOINT")[0].exec; !slices.Equal(got, []string{"/x", "serve"}) {
		t.Errorf("exec form: %q", got)
	}
	if df.stages[1].all("CMD")[0].exec != nil {
		t.Errorf("shell form parsed as exec form")
	}
	for _, bad := range []string{"FROM a\nBOGUS x\n", "RUN x\n", "FROM a\nRUN x \\\n", "FROM a\nENTRYPOINT [\"x\",]\n"} {
		if _, err := parseDockerfile([]byte(bad)); err == nil {
			t.Errorf("parseDockerfile(%q) accepted it", bad)
		}
	}
	for _, bad := range []string{"go build && rm -rf /", "go build | tee x", "go build > x", "go $(echo build)", "go build `x`", "go build *.go", "go build 'x"} {
		if w, err := shellWords(bad, nil); err == nil {
			t.Errorf("shellWords(%q) = %q, want an error", bad, w)
		}
	}
	w, err := shellWords(`A=1 go build -ldflags "-X main.v=${V}" -o '/o $V'`, map[string]string{"V": "9"})
	if err != nil || !slices.Equal(w, []string{"A=1", "go", "build", "-ldflags", "-X main.v=9", "-o", "/o $V"}) {
		t.Errorf("shellWords: %q, %v", w, err)
	}
}

// TestDockerBuildStageRuns runs the build stage outside Docker: its COPY
// instructions into a temporary root (honouring .dockerignore), then each of
// its RUN commands with the ARGs set as "docker build --build-arg" would, and
// then the binary it produced. No network: GOPROXY=off, so the module cache
// must already hold the dependencies (go test itself needs them).
func TestDockerBuildStageRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	df := loadDockerfile(t)
	build := df.buildStage(t)
	repo := repoRoot(t)
	ignore := dockerignore(t, repo)
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	const version, commit = "v9.8.7-deploycheck", "0123456789abcdef"
	vars := map[string]string{"TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH, "BUILDPLATFORM": runtime.GOOS + "/" + runtime.GOARCH}
	for _, a := range df.globalArgs {
		k, v, _ := strings.Cut(a.args, "=")
		vars[k] = v
	}
	buildArgs := map[string]string{"VERSION": version, "COMMIT": commit, "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH}
	inRoot := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	workdir := "/"
	abs := func(p string) string {
		if path.IsAbs(p) {
			return p
		}
		return path.Join(workdir, p)
	}
	for _, in := range build.instrs {
		switch in.cmd {
		case "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			if ba, ok := buildArgs[k]; ok {
				v = ba
			}
			vars[k] = v
		case "ENV":
			t.Fatalf("line %d: ENV in the build stage is not emulated by this test; pass settings on the RUN line", in.line)
		case "WORKDIR":
			workdir = abs(expandVars(in.args, vars))
			if err := os.MkdirAll(inRoot(workdir), 0o755); err != nil {
				t.Fatal(err)
			}
		case "COPY":
			f := strings.Fields(expandVars(in.args, vars))
			if len(in.flags) > 0 || len(f) < 2 {
				t.Fatalf("line %d: COPY %s: only plain COPY SRC... DEST is emulated", in.line, in.args)
			}
			dest := abs(f[len(f)-1])
			// As Docker: several sources, a trailing slash or an existing
			// directory make dest a directory to copy into.
			st, err := os.Stat(inRoot(dest))
			intoDir := strings.HasSuffix(f[len(f)-1], "/") || len(f) > 2 || (err == nil && st.IsDir())
			for _, src := range f[:len(f)-1] {
				if err := copyContext(repo, src, inRoot(dest), intoDir || src == ".", ignore); err != nil {
					t.Fatalf("line %d: %v", in.line, err)
				}
			}
		case "RUN":
			words, err := shellWords(in.args, vars)
			if err != nil {
				t.Fatalf("line %d: %v", in.line, err)
			}
			env := []string{"GOPROXY=off", "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false", "GOWORK=off"}
			for len(words) > 0 && envAssign.MatchString(words[0]) {
				env = append(env, words[0])
				words = words[1:]
			}
			if len(words) == 0 || words[0] != "go" {
				t.Fatalf("line %d: RUN %s: only go commands can be run outside Docker by this test", in.line, in.args)
			}
			for i, w := range words {
				if i > 0 && words[i-1] == "-o" && path.IsAbs(w) {
					words[i] = inRoot(w)
					if err := os.MkdirAll(filepath.Dir(words[i]), 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
			cmd := exec.CommandContext(ctx, goTool(t), words[1:]...)
			cmd.Dir = inRoot(workdir)
			cmd.Env = append(os.Environ(), env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("line %d: %s: %v\n%s", in.line, strings.Join(words, " "), err, out)
			}
		default:
			t.Fatalf("line %d: %s in the build stage is not emulated by this test", in.line, in.cmd)
		}
	}

	// The binary the final stage copies.
	var bin string
	for _, c := range df.stages[len(df.stages)-1].all("COPY") {
		if slices.Contains(c.flags, "--from="+build.name) {
			bin = inRoot(strings.Fields(c.args)[0])
		}
	}
	if bin == "" {
		t.Fatal("no COPY --from of the build stage in the final stage")
	}
	out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	if !strings.Contains(string(out), "gatehouse "+version+"\n") || !strings.Contains(string(out), "commit: "+commit+"\n") {
		t.Errorf("gatehouse version printed %q: want the stamped version %s and commit %s", out, version, commit)
	}

	// CGO_ENABLED=0 and -s: a static binary without a symbol table.
	if runtime.GOOS == "linux" {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatalf("open the binary as ELF: %v", err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("the binary is dynamically linked (program header %v): distroless/static has no libc", p.Type)
			}
		}
		if f.Section(".symtab") != nil {
			t.Errorf("the binary has a symbol table: -ldflags -s did not apply")
		}
	}
}

// goTool returns the go command that runs this test.
func goTool(t *testing.T) string {
	t.Helper()
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command: %v", err)
	}
	return p
}

// dockerignore reads .dockerignore's patterns (no negations).
func dockerignore(t *testing.T, repo string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, ".dockerignore"))
	if err != nil {
		t.Fatalf("read .dockerignore: %v", err)
	}
	var pats []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") {
			t.Fatalf(".dockerignore: negated pattern %q is not emulated by this test", l)
		}
		pats = append(pats, strings.TrimPrefix(path.Clean(l), "/"))
	}
	return pats
}

// ignored reports whether rel (slash-separated, relative to the context) is
// excluded by pats: a pattern matches the path or one of its parents.
func ignored(rel string, pats []string) bool {
	for _, p := range pats {
		anyDepth := strings.HasPrefix(p, "**/")
		p = strings.TrimPrefix(p, "**/")
		for cand := rel; cand != "." && cand != "/" && cand != ""; cand = path.Dir(cand) {
			if ok, _ := path.Match(p, cand); ok {
				return true
			}
			if ok, _ := path.Match(p, path.Base(cand)); ok && anyDepth {
				return true
			}
		}
	}
	return false
}

// copyContext copies src (relative to the build context) to dest, skipping
// what .dockerignore excludes. intoDir: dest is a directory to copy into.
func copyContext(repo, src, dest string, intoDir bool, ignore []string) error {
	src = path.Clean(src)
	base := filepath.Join(repo, filepath.FromSlash(src))
	return filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repo, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && ignored(rel, ignore) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		sub, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dest, sub)
		if intoDir && src != "." && !d.IsDir() && sub == "." {
			target = filepath.Join(dest, filepath.Base(p))
		}
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// TestDockerignore checks that the build context keeps the Go sources and
// drops what must not be sent (Git history, deployment files).
func TestDockerignore(t *testing.T) {
	pats := dockerignore(t, repoRoot(t))
	for _, p := range []string{".git", ".git/config", "charts/gatehouse/values.yaml", "README.md"} {
		if !ignored(p, pats) {
			t.Errorf(".dockerignore does not exclude %s", p)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd/gatehouse/main.go", "authz/routes/meet.go", "internal/config/config.go"} {
		if ignored(p, pats) {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
}
