package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Secret is a configuration value that must never be printed: its String,
// GoString, LogValue and MarshalText methods all redact it. Convert it with
// []byte(s) or string(s) only where the raw value is needed (the HMAC key).
type Secret string

// Redacted is what a set Secret prints as.
const Redacted = "REDACTED"

// String returns "REDACTED" for a set secret and "" for an empty one.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// GoString implements fmt.GoStringer so %#v redacts too.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText implements encoding.TextMarshaler so JSON and YAML encoders
// redact too.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// The flag.Value implementations below write straight into a Config field, so
// an environment variable and a flag go through the same parser and the flag,
// set later, wins.

type stringValue struct{ p *string }

func (v stringValue) Set(s string) error { *v.p = s; return nil }
func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

type secretValue struct{ p *Secret }

func (v secretValue) Set(s string) error { *v.p = Secret(s); return nil }
func (v secretValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.ToLower(v.p.String())
}

type boolValue struct{ p *bool }

func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q is not a boolean (want true or false)", s)
	}
	*v.p = b
	return nil
}
func (v boolValue) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}

// IsBoolFlag lets "--flag" mean "--flag=true".
func (v boolValue) IsBoolFlag() bool { return true }

type durationValue struct{ p *time.Duration }

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (want e.g. 30s, 5m, 1h)", s)
	}
	*v.p = d
	return nil
}
func (v durationValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.ToLower(v.p.String())
}

type intValue struct{ p *int }

func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return fmt.Errorf("%q is out of range", s)
		}
		return fmt.Errorf("%q is not an integer", s)
	}
	*v.p = n
	return nil
}
func (v intValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.Itoa(*v.p)
}

type levelValue struct{ p *slog.Level }

func (v levelValue) Set(s string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return fmt.Errorf("%q is not a log level (want debug, info, warn or error)", s)
	}
	*v.p = l
	return nil
}
func (v levelValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.ToLower(v.p.String())
}

type floatValue struct{ p *float64 }

func (v floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	*v.p = f
	return nil
}
func (v floatValue) String() string {
	if v.p == nil {
		return ""
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}

// byteSizeValue is a size in bytes, written as a whole number of bytes or
// with a binary unit: "67108864", "64MiB", "512KiB", "1GiB".
type byteSizeValue struct{ p *int }

// byteUnits are the accepted units, largest first (formatByteSize picks the
// largest exact one).
var byteUnits = []struct {
	name string
	size int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

func (v byteSizeValue) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

func (v byteSizeValue) String() string {
	if v.p == nil {
		return ""
	}
	return formatByteSize(*v.p)
}

func parseByteSize(s string) (int, error) {
	t := strings.TrimSpace(s)
	unit := int64(1)
	for _, u := range byteUnits {
		if len(t) > len(u.name) && strings.EqualFold(t[len(t)-len(u.name):], u.name) {
			t, unit = strings.TrimSpace(t[:len(t)-len(u.name)]), u.size
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (want bytes, or e.g. 512KiB, 64MiB, 1GiB)", s)
	}
	// Bounded well below any overflow: the settings using sizes check a
	// range far smaller than this.
	if n > (1<<40)/unit {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return int(n * unit), nil
}

// formatByteSize writes n with the largest binary unit that divides it.
func formatByteSize(n int) string {
	for _, u := range byteUnits {
		if n != 0 && int64(n)%u.size == 0 {
			return strconv.FormatInt(int64(n)/u.size, 10) + u.name
		}
	}
	return strconv.Itoa(n)
}
