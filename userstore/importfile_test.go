package userstore

import (
	"maps"
	"strings"
	"testing"
)

// TestReadImportTakesBackWhatExportWrites: emails with spaces or without
// "@", a present empty email, extra fields and ids with inner or outer
// spaces are what export writes for records lookups can see: import takes
// them as they are.
func TestReadImportTakesBackWhatExportWrites(t *testing.T) {
	in := `{"id":"a b","active":true,"email":"Ann Example <ann@example.com>"}
{"id":" c","active":false,"email":"","extra":{"team":"blue","":"empty name"}}
{"id":"d","active":true,"email":"x"}
{"id":"e","active":true}
{"id":"f","active":true,"extra":{"active":"1"}}
{"id":"g\u0001","active":true}
`
	imp, err := ReadImport(strings.NewReader(in), User, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Records) != 4 || len(imp.Rejected) != 2 {
		t.Fatalf("records %+v, rejected %+v", imp.Records, imp.Rejected)
	}
	a, c, d, e := imp.Records[0], imp.Records[1], imp.Records[2], imp.Records[3]
	if a.ID != "a b" || a.Email != "Ann Example <ann@example.com>" || !a.EmailSet {
		t.Errorf("a = %+v", a)
	}
	if c.ID != " c" || c.Email != "" || !c.EmailSet || !maps.Equal(c.Extra, map[string]string{"team": "blue", "": "empty name"}) {
		t.Errorf("c = %+v", c)
	}
	if d.Email != "x" || e.EmailSet {
		t.Errorf("d = %+v, e = %+v", d, e)
	}
	if r := imp.Rejected[0]; r.Line != 5 || !strings.Contains(r.Err, `extra field "active"`) {
		t.Errorf("rejected %+v", r)
	}
	if r := imp.Rejected[1]; r.Line != 6 || !strings.Contains(r.Err, "control") {
		t.Errorf("rejected %+v", r)
	}
}
