package deploycheck

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// productModule is the first line of the product's go.mod, which lies at the
// repository's top.
const productModule = "module github.com/gatehouse-authz/gatehouse\n"

// repoRoot returns the repository's top: the nearest parent of the test's
// directory holding the product's go.mod (this module's own go.mod, one
// level down, names another module).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), productModule) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod of the product above the test's directory")
		}
		dir = parent
	}
}

// readRepoFile reads a file given relative to the module root.
func readRepoFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return b
}

// splitYAMLDocs splits a YAML stream on "---" lines and drops documents that
// hold only comments or blank lines.
func splitYAMLDocs(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if hasContent(cur.Bytes()) {
			docs = append(docs, append([]byte(nil), cur.Bytes()...))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimRight(line, " \t") == "---" {
			flush()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	flush()
	return docs
}

func hasContent(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		l := strings.TrimSpace(line)
		if l != "" && !strings.HasPrefix(l, "#") {
			return true
		}
	}
	return false
}

// yamlToJSON converts one YAML document to JSON, refusing duplicate keys.
func yamlToJSON(doc []byte) ([]byte, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, fmt.Errorf("yaml to json: %w", err)
	}
	return j, nil
}

// decodeStrict decodes JSON into v the way the Kubernetes API server's strict
// field validation does: an unknown field, a field in the wrong case or a
// duplicate field is an error. encoding/json's DisallowUnknownFields runs
// first (it reports unknown fields with their names); sigs.k8s.io/json adds
// case-sensitivity and duplicate detection, which encoding/json lacks.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	if dec.More() {
		return fmt.Errorf("decode %T: trailing data after the object", v)
	}
	strictErrs, err := k8sjson.UnmarshalStrict(data, v)
	if err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	if len(strictErrs) > 0 {
		return fmt.Errorf("decode %T: %w", v, errors.Join(strictErrs...))
	}
	return nil
}

// decodeYAMLStrict converts doc to JSON and decodes it strictly into v.
func decodeYAMLStrict(doc []byte, v any) error {
	j, err := yamlToJSON(doc)
	if err != nil {
		return err
	}
	return decodeStrict(j, v)
}

// TestDecodeStrictRefuses keeps the strict decoder honest: each input below
// would be silently accepted by a lenient decoder.
func TestDecodeStrictRefuses(t *testing.T) {
	type probe struct {
		Name string `json:"name"`
		Port int    `json:"port"`
	}
	for name, in := range map[string]string{
		"unknown field":   `{"name": "a", "prot": 1}`,
		"wrong case":      `{"Name": "a"}`,
		"duplicate field": `{"name": "a", "name": "b"}`,
		"trailing data":   `{"name": "a"} {}`,
	} {
		var p probe
		if err := decodeStrict([]byte(in), &p); err == nil {
			t.Errorf("%s: decodeStrict(%s) accepted it", name, in)
		}
	}
	var p probe
	if err := decodeStrict([]byte(`{"name": "a", "port": 1}`), &p); err != nil || p != (probe{"a", 1}) {
		t.Errorf("decodeStrict of a valid object: %+v, %v", p, err)
	}
	if _, err := yamlToJSON([]byte("a: 1\na: 2\n")); err == nil {
		t.Errorf("yamlToJSON accepted a duplicate key")
	}
}
