// Package userstore holds gatehouse's user directory: the records that say
// whether a user (or an application) exists and is active, and the layers that
// answer lookups for them: an in-memory directory, Redis, an in-process
// cache in front of either, and a circuit breaker between the cache and a
// remote origin (Circuit).
//
// The directory is on the path of every request, so its contract is built for
// failing closed: a lookup either answers with a definite Status or returns an
// error, and callers must treat every error as "cannot decide", never as an
// allow.
package userstore

import (
	"context"
	"errors"
)

// Kind says which table of the directory a lookup addresses.
type Kind uint8

const (
	// User records are keyed by user id (the token's user_id claim).
	User Kind = iota + 1
	// App records are keyed by application client id (the token's client_id claim).
	App
)

// String returns the name used in Redis keys and invalidation messages
// ("user" or "app").
func (k Kind) String() string {
	switch k {
	case User:
		return "user"
	case App:
		return "app"
	default:
		return "unknown"
	}
}

// Status is the directory's answer for one record.
type Status uint8

const (
	// NotFound is the zero value: an unknown record is never active.
	NotFound Status = iota
	// Active records may authenticate.
	Active
	// Inactive records exist but are disabled.
	Inactive
)

// String returns a lower-case name for logs.
func (s Status) String() string {
	switch s {
	case Active:
		return "active"
	case Inactive:
		return "inactive"
	default:
		return "not_found"
	}
}

// Directory answers whether a record exists and is active.
//
// Implementations return (NotFound, nil) for a record that does not exist and
// a non-nil error only when they cannot answer (backend down, timeout,
// cancelled context). Errors must wrap ErrUnavailable or the context's error so
// callers can tell "no answer" from a bug, and must never contain secrets.
type Directory interface {
	Lookup(ctx context.Context, kind Kind, id string) (Status, error)
}

// ErrUnavailable reports that a directory could not answer a lookup.
var ErrUnavailable = errors.New("directory unavailable")

// Record is one entry of the directory as operators write it.
type Record struct {
	ID     string `json:"id" yaml:"id"`
	Active bool   `json:"active" yaml:"active"`
	Email  string `json:"email,omitempty" yaml:"email,omitempty"`
	// Sub is the user's OIDC subject (Meet's meet_user.sub), for tokens
	// checked by introspection; empty for none. Users only: an app with a
	// sub is refused by every loader and writer.
	Sub string `json:"sub,omitempty" yaml:"sub,omitempty"`
}

// Subjects maps an OIDC subject (Meet's meet_user.sub) to the id of the
// user it belongs to, for tokens checked by introspection (docs/oidc.md).
//
// found is false when no user has that subject. As with Directory, a
// non-nil error means no answer, wraps ErrUnavailable or the context's
// error, and never contains secrets.
type Subjects interface {
	UserBySub(ctx context.Context, sub string) (id string, found bool, err error)
}
