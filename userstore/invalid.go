package userstore

import "errors"

// ErrInvalidRecord reports a record that exists but cannot be read as a
// status: a Redis key of another type, a hash without a valid "active"
// field. It is that record's problem, not the directory's, so the layers
// treat it apart from ErrUnavailable (which it never wraps):
//
//   - a Circuit does not count it as a failure: the origin answered;
//   - a Cache does not cache it and never serves a stale entry in its place
//     (the origin is up; the record is bad), and answers Inactive: the
//     caller is denied, like any record that does not say "active";
//   - it is counted (outcome "invalid") and logged within a log budget.
//
// An origin returns it together with the status Inactive, so that a caller
// that ignores the distinction still fails closed.
var ErrInvalidRecord = errors.New("invalid directory record")
