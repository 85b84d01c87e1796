package oidc

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// refusal says why an answer was refused. It is logged (at debug level) and
// never sent to the client, which gets "Login failed" as from Meet; it never
// holds a claim's value.
type refusal string

func (r refusal) Error() string { return string(r) }

// decodeObject reads a JSON object as Python's json.loads does
// (authz.DecodeJSONObject): duplicate keys, the last one wins; numbers are
// kept as json.Number; a lone surrogate is kept as bytes that are not UTF-8,
// so a string holding one fails authz.HeaderSafe and is refused.
func decodeObject(b []byte) (map[string]any, error) {
	m, ok := authz.DecodeJSONObject(b)
	if !ok {
		return nil, refusal("answer is not a JSON object as Python reads one")
	}
	return m, nil
}

// checkIntrospection applies Meet's checks of an introspection answer's
// claims (RFC 7662 members), narrowed where Meet takes loosely typed values:
// active must be JSON true, scope a string, sub a non-empty string. With
// checkIss, iss must be the issuer when present (the JWT form checks iss on
// the enclosing JWT instead).
func (i *Introspector) checkIntrospection(m map[string]any, checkIss bool, now time.Time) (authz.Introspection, error) {
	if v, ok := m["active"].(bool); !ok || !v {
		return authz.Introspection{}, refusal("not active")
	}
	if checkIss {
		if v, present := m["iss"]; present {
			if s, ok := v.(string); !ok || s != i.cfg.issuer {
				return authz.Introspection{}, refusal("iss is not the issuer")
			}
		}
	}
	scope, ok := m["scope"].(string)
	if !ok {
		return authz.Introspection{}, refusal("scope missing or not a string")
	}
	if !i.scopeAllowed(scope) {
		return authz.Introspection{}, refusal("scope shares none of the required scopes")
	}
	aud, ok := audience(m[i.cfg.audienceClaim])
	if !ok {
		return authz.Introspection{}, refusal("audience claim missing or malformed")
	}
	sub, ok := m["sub"].(string)
	if !ok || sub == "" {
		return authz.Introspection{}, refusal("sub missing or not a string")
	}
	var expiry time.Time
	if v, present := m["exp"]; present {
		t, ok := numericDate(v)
		if !ok {
			return authz.Introspection{}, refusal("exp is not a number")
		}
		if !now.Before(t) {
			// An active token past its exp is a contradictory answer.
			return authz.Introspection{}, refusal("exp is past")
		}
		expiry = t
	}
	v := authz.Introspection{Active: true, Sub: sub, Audience: aud, Scope: scope, Expiry: expiry}
	if err := i.checkVerdict(v, now); err != nil {
		return authz.Introspection{}, err
	}
	return v, nil
}

// scopeAllowed splits scope exactly like Python's str.split(" ") (so "a  b"
// holds an empty element) and reports whether an element is required.
func (i *Introspector) scopeAllowed(scope string) bool {
	for rest := scope; ; {
		el, tail, more := strings.Cut(rest, " ")
		if _, ok := i.cfg.requiredScopes[el]; ok {
			return true
		}
		if !more {
			return false
		}
		rest = tail
	}
}

// audience reads the audience claim: a non-empty string, or a non-empty
// list of non-empty strings, joined with single spaces (Meet keeps the
// Python str() of the value; a list of strings is the RFC 7662 form of
// "aud").
func audience(v any) (string, bool) {
	switch a := v.(type) {
	case string:
		return a, a != ""
	case []any:
		if len(a) == 0 {
			return "", false
		}
		parts := make([]string, len(a))
		for k, e := range a {
			s, ok := e.(string)
			if !ok || s == "" {
				return "", false
			}
			parts[k] = s
		}
		return strings.Join(parts, " "), true
	default:
		return "", false
	}
}

// numericDate reads a JSON number of seconds since the epoch (RFC 7519
// NumericDate; fractions allowed, as Python compares floats).
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	// Bounds keep the conversion to nanoseconds exact enough and finite:
	// year 1970 to about 2262.
	if err != nil || math.IsNaN(f) || f < 0 || f > math.MaxInt64/1e9 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// checkVerdict holds the invariants of a verdict, whether it was just made
// from an answer or read back from the shared cache (written, possibly, by
// a replica of another version or configuration): an active verdict has a
// subject, an audience and a scope sharing a required scope, all of which
// can be sent upstream as header values, and has not expired; a refusal
// carries nothing but a description the client may read.
func (i *Introspector) checkVerdict(v authz.Introspection, now time.Time) error {
	if !v.Active {
		if v.Sub != "" || v.Audience != "" || v.Scope != "" || !v.Expiry.IsZero() {
			return errors.New("refusal with claims")
		}
		if v.Description != "" && !descriptionSafe(v.Description) {
			return errors.New("description not printable")
		}
		return nil
	}
	switch {
	case v.Description != "":
		return errors.New("active verdict with a description")
	case v.Sub == "" || v.Audience == "":
		return refusal("empty sub or audience")
	case !authz.HeaderSafe(v.Sub) || !authz.HeaderSafe(v.Audience) || !authz.HeaderSafe(v.Scope):
		return refusal("sub, audience or scope is not header-safe")
	case strings.ContainsRune(v.Sub, utf8.RuneError) || strings.ContainsRune(v.Audience, utf8.RuneError) ||
		strings.ContainsRune(v.Scope, utf8.RuneError):
		// A verdict read back from the shared cache went through
		// encoding/json, which turns a lone surrogate escape into U+FFFD,
		// and HeaderSafe accepts that: a forged value could name a sub the
		// provider never sent. (Answers keep lone surrogates as bytes that
		// fail HeaderSafe: decodeObject.) A real U+FFFD is refused too.
		return refusal("sub, audience or scope holds U+FFFD")
	case !i.scopeAllowed(v.Scope):
		return refusal("scope shares none of the required scopes")
	case !v.Expiry.IsZero() && !now.Before(v.Expiry):
		return refusal("exp is past")
	}
	return nil
}

// descriptionSafe accepts what is passed on to the client as the reason of
// a refusal: short, printable ASCII.
func descriptionSafe(s string) bool {
	if len(s) > maxDescriptionBytes {
		return false
	}
	for k := 0; k < len(s); k++ {
		if s[k] < 0x20 || s[k] > 0x7e {
			return false
		}
	}
	return true
}
