package userstore

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on imported fields: generous for real ids and addresses, small
// enough that a corrupt file cannot fill Redis with megabyte keys.
const (
	maxIDLen    = 256
	maxEmailLen = 320
	// MaxSubLen is Meet's meet_user.sub, varchar(255): characters, not
	// bytes.
	MaxSubLen  = 255
	maxLineLen = 64 << 10
)

// LineError is one rejected line of an import file.
type LineError struct {
	Line int
	Err  string
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Err) }

// Entry is one record to write with all its hash fields: what export
// prints and import writes back, byte for byte.
type Entry struct {
	Record
	// EmailSet writes the email field even when Email is empty (a stored
	// empty email); otherwise an empty Email removes the field.
	EmailSet bool `json:"-" yaml:"-"`
	// Extra holds the hash's other fields, written as they are. Its names
	// are never "active", "email" or "sub".
	Extra map[string]string `json:"extra,omitempty" yaml:"extra,omitempty"`
}

// Import is an import file read and checked, before anything is written.
type Import struct {
	// Format is "jsonl" or "csv".
	Format string
	// Read counts the data lines (blank lines and the CSV header excluded).
	Read int
	// Records are the valid records, ids normalised, in file order; Lines
	// holds each one's line number.
	Records []Entry
	Lines   []int
	// Rejected lists the invalid lines, in file order.
	Rejected []LineError
}

// CheckID validates a record id: any id the decision core can look up
// (non-empty, valid UTF-8, no ASCII control character other than tab: a
// token whose id has one is refused before any lookup), at most 256 bytes.
// Spaces are allowed, even leading or trailing: such an id can be looked
// up, so refusing it would make export | import drop a record. normalize,
// when set (UUID user ids), also gives the id its canonical form and
// rejects what it does not accept.
func CheckID(id string, normalize func(string) (string, bool)) (string, error) {
	switch {
	case id == "":
		return "", errors.New("empty id")
	case len(id) > maxIDLen:
		return "", fmt.Errorf("id longer than %d bytes", maxIDLen)
	case !utf8.ValidString(id):
		return "", errors.New("id is not valid UTF-8")
	case strings.IndexFunc(id, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) >= 0:
		// The decision core's rule for ids (authz.HeaderSafe), which this
		// package cannot import.
		return "", errors.New("id contains control characters")
	}
	if normalize != nil {
		canonical, ok := normalize(id)
		if !ok {
			return "", fmt.Errorf("id %q is not a UUID", id)
		}
		return canonical, nil
	}
	return id, nil
}

// CheckEmail validates an email given on the command line: empty, or one
// line of printable text with an "@", at most 320 bytes. It is stored for
// operators, not used for decisions, so the check is about sanity, not RFC
// 5322. Imports check less (see checkStoredValue): they must take back
// whatever export wrote.
func CheckEmail(email string) error {
	switch {
	case email == "":
		return nil
	case len(email) > maxEmailLen:
		return fmt.Errorf("email longer than %d bytes", maxEmailLen)
	case !utf8.ValidString(email), strings.IndexFunc(email, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errors.New("email contains whitespace, control characters or invalid UTF-8")
	case !strings.Contains(email, "@"):
		return fmt.Errorf("email %q has no @", email)
	}
	return nil
}

// CheckSub validates an OIDC subject: non-empty, valid UTF-8 without
// control characters, at most MaxSubLen characters (Meet's column). Errors
// never quote the subject: it identifies a person to the identity provider.
func CheckSub(sub string) error {
	switch {
	case sub == "":
		return errors.New("empty sub")
	case !utf8.ValidString(sub):
		return errors.New("sub is not valid UTF-8")
	case utf8.RuneCountInString(sub) > MaxSubLen:
		return fmt.Errorf("sub longer than %d characters", MaxSubLen)
	case strings.IndexFunc(sub, unicode.IsControl) >= 0:
		return errors.New("sub contains control characters")
	}
	return nil
}

// checkStoredValue validates an imported email or extra field: any valid
// UTF-8 (JSON carries nothing else; export reports values it cannot carry
// instead of rewriting them).
func checkStoredValue(what, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	return nil
}

// ReadImport reads an import file of kind's records: JSON lines ({"id":
// ..., "active": ..., "email": ..., "sub": ..., "extra": {...}}, one object
// per line, as export writes them) when its first non-blank line starts
// with "{", otherwise CSV with a header naming the columns id, active and
// optionally email and sub, in any order. A sub (users only: an app with
// one is a rejected line) is checked by CheckSub, and a sub twice in the
// file is rejected like a duplicate id; an empty or absent sub means none
// (import removes a stored one).
// "active" is required: JSON true or false, or in CSV 1, 0, true or false.
// Unknown fields or columns are refused (a misspelt "actve" must not import
// everyone as disabled). In JSON an "email" present, even "", is written as
// it is, and an absent one removes the stored email; "extra" holds the
// hash's other fields, written as they are. Email and extra values may be
// any valid UTF-8: they decide nothing, and refusing them would make export
// | import lose records. A duplicate id, after normalisation, is rejected
// with the line of its first occurrence.
//
// Every line is checked and every problem reported; ReadImport only fails
// for an unreadable input.
func ReadImport(r io.Reader, kind Kind, normalize func(string) (string, bool)) (*Import, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := peekFirst(br)
	if err != nil {
		return nil, err
	}
	imp := &Import{}
	seen := map[string]int{}
	seenSub := map[string]int{}
	add := func(line int, rec Entry, err error) {
		imp.Read++
		if err == nil {
			rec.ID, err = CheckID(rec.ID, normalize)
		}
		if err == nil {
			err = checkStoredValue("email", rec.Email)
		}
		if err == nil && rec.Sub != "" {
			if kind != User {
				err = fmt.Errorf("%s has a sub: only users have one", kind)
			} else {
				err = CheckSub(rec.Sub)
			}
		}
		for name, v := range rec.Extra {
			if err != nil {
				break
			}
			switch {
			case name == "active" || name == "email" || name == "sub":
				err = fmt.Errorf("extra field %q: set it at the top level", name)
			default:
				err = checkStoredValue(fmt.Sprintf("extra field %q", name), v)
			}
		}
		if err == nil {
			if prev, dup := seen[rec.ID]; dup {
				err = fmt.Errorf("duplicate id %s (first on line %d)", rec.ID, prev)
			} else if prev, dup := seenSub[rec.Sub]; dup && rec.Sub != "" {
				err = fmt.Errorf("duplicate sub (first on line %d)", prev)
			}
		}
		if err != nil {
			imp.Rejected = append(imp.Rejected, LineError{Line: line, Err: err.Error()})
			return
		}
		seen[rec.ID] = line
		if rec.Sub != "" {
			seenSub[rec.Sub] = line
		}
		imp.Records = append(imp.Records, rec)
		imp.Lines = append(imp.Lines, line)
	}
	if first == '{' {
		imp.Format = "jsonl"
		return imp, readJSONL(br, add)
	}
	imp.Format = "csv"
	return imp, readCSV(br, add)
}

// peekFirst returns the first non-whitespace byte without consuming
// anything, or 0 for an empty input.
func peekFirst(br *bufio.Reader) (byte, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if len(b) == n {
			if c := b[n-1]; c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				return c, nil
			}
			if n < br.Size() {
				continue
			}
			return 0, errors.New("the file starts with more than 64 KiB of blank space")
		}
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read: %w", err)
		}
	}
}

type jsonRecord struct {
	ID     *string           `json:"id"`
	Active *bool             `json:"active"`
	Email  *string           `json:"email"`
	Sub    *string           `json:"sub"`
	Extra  map[string]string `json:"extra"`
}

func readJSONL(br *bufio.Reader, add func(int, Entry, error)) error {
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineLen)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var jr jsonRecord
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		err := dec.Decode(&jr)
		switch {
		case err != nil:
			err = fmt.Errorf("not a JSON record: %s", jsonReason(err))
		case dec.More():
			err = errors.New("more than one JSON value on the line")
		case jr.ID == nil:
			err = errors.New(`missing "id"`)
		case jr.Active == nil:
			err = errors.New(`missing "active" (true or false)`)
		}
		rec := Entry{}
		if err == nil {
			rec = Entry{Record: Record{ID: *jr.ID, Active: *jr.Active}, Extra: jr.Extra}
			if jr.Email != nil {
				// Present, even empty: written as it is, as export read it.
				rec.Email, rec.EmailSet = *jr.Email, true
			}
			if jr.Sub != nil {
				rec.Sub = *jr.Sub
			}
		}
		add(line, rec, err)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: longer than %d bytes", line+1, maxLineLen)
		}
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

// jsonReason shortens encoding/json's errors, which never quote more than a
// field name or a type.
func jsonReason(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}

func parseActive(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("active %q is not 1, 0, true or false", s)
}

func readCSV(br *bufio.Reader, add func(int, Entry, error)) error {
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // checked below, per line, so that a short line is one rejection
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return fmt.Errorf("CSV header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		switch h {
		case "id", "active", "email", "sub":
		default:
			return fmt.Errorf("CSV header: unknown column %q (want id, active and optionally email and sub)", h)
		}
		if _, dup := col[h]; dup {
			return fmt.Errorf("CSV header: column %q twice", h)
		}
		col[h] = i
	}
	for _, need := range []string{"id", "active"} {
		if _, ok := col[need]; !ok {
			return fmt.Errorf("CSV header: no %q column (want id, active and optionally email and sub)", need)
		}
	}
	for {
		fields, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		line, _ := cr.FieldPos(0)
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			add(pe.Line, Entry{}, fmt.Errorf("malformed CSV: %w", pe.Err))
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if len(fields) == 1 && strings.TrimSpace(fields[0]) == "" {
			continue // a blank line with spaces
		}
		if len(fields) != len(header) {
			add(line, Entry{}, fmt.Errorf("%d fields, the header has %d", len(fields), len(header)))
			continue
		}
		rec := Entry{Record: Record{ID: strings.TrimSpace(fields[col["id"]])}}
		rec.Active, err = parseActive(fields[col["active"]])
		if i, ok := col["email"]; ok {
			rec.Email = strings.TrimSpace(fields[i])
		}
		if i, ok := col["sub"]; ok {
			// Not trimmed at the end: a subject is compared exactly.
			rec.Sub = fields[i]
		}
		add(line, rec, err)
	}
}

// MaxLineLen is the longest line (newline included) an import file may
// have; export writes no longer one.
const MaxLineLen = maxLineLen
