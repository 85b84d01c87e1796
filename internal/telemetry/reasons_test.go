package telemetry

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// TestReasonsComplete keeps authz.Reasons in step with the Reason constants
// of the authz package: a reason missing from the list would be counted as
// "other" in gatehouse_decisions_total.
func TestReasonsComplete(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "authz", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	listed := authz.Reasons()
	fset := token.NewFileSet()
	found := 0
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok || vs.Type == nil {
				return true
			}
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
				return true
			}
			for _, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				s, _ := strconv.Unquote(lit.Value)
				found++
				if !slices.Contains(listed, authz.Reason(s)) {
					t.Errorf("reason %q (%s) is not in authz.Reasons()", s, fset.Position(lit.Pos()))
				}
			}
			return true
		})
	}
	if found != len(listed) || found == 0 {
		t.Errorf("%d Reason constants, %d in authz.Reasons()", found, len(listed))
	}
}
