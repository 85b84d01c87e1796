package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-authz/gatehouse/internal/bytesize"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// Secret is a configuration value that must never be printed: its String,
// GoString, LogValue and MarshalText methods all redact it. Convert it with
// []byte(s) or string(s) only where the raw value is needed (the HMAC key).
type Secret string

// Redacted is what a set Secret prints as.
const Redacted = redisstore.Redacted

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

func (v byteSizeValue) Set(s string) error {
	n, err := bytesize.Parse(s)
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
	return bytesize.Format(*v.p)
}

// urlValue is a URL that may hold a password (the Redis URL): it prints
// redacted, in the help text's defaults too.
type urlValue struct{ p *string }

func (v urlValue) Set(s string) error { *v.p = s; return nil }
func (v urlValue) String() string {
	if v.p == nil {
		return ""
	}
	return redisstore.RedactURL(*v.p)
}

// The logged values: typed, so that JSON logs keep numbers and booleans;
// durations, levels and sizes as the flag prints them; secrets redacted.

func (v stringValue) logValue() slog.Value   { return slog.StringValue(*v.p) }
func (v secretValue) logValue() slog.Value   { return v.p.LogValue() }
func (v urlValue) logValue() slog.Value      { return slog.StringValue(v.String()) }
func (v boolValue) logValue() slog.Value     { return slog.BoolValue(*v.p) }
func (v durationValue) logValue() slog.Value { return slog.StringValue(v.p.String()) }
func (v intValue) logValue() slog.Value      { return slog.IntValue(*v.p) }
func (v levelValue) logValue() slog.Value    { return slog.StringValue(v.String()) }
func (v floatValue) logValue() slog.Value    { return slog.Float64Value(*v.p) }
func (v byteSizeValue) logValue() slog.Value { return slog.StringValue(v.String()) }
