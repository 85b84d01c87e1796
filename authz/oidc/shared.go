package oidc

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// sharedVersion tags the shared value's layout; a value of another version
// is a miss, so replicas of two versions can share a cache during a rollout.
const sharedVersion = 1

// sharedValue is a verdict as stored in the shared cache. It carries its
// absolute expiry (Until) so that a replica reading it never keeps it
// longer than the replica that wrote it meant to; it holds no token text.
type sharedValue struct {
	V           int    `json:"v"`
	Until       int64  `json:"until"` // Unix milliseconds
	Active      bool   `json:"active"`
	Description string `json:"desc,omitempty"`
	Sub         string `json:"sub,omitempty"`
	Audience    string `json:"aud,omitempty"`
	Scope       string `json:"scope,omitempty"`
	Expiry      int64  `json:"exp,omitempty"` // Unix milliseconds, 0: none
}

func encodeShared(v authz.Introspection, until time.Time) ([]byte, error) {
	s := sharedValue{
		V: sharedVersion, Until: until.UnixMilli(), Active: v.Active,
		Description: v.Description, Sub: v.Sub, Audience: v.Audience, Scope: v.Scope,
	}
	if !v.Expiry.IsZero() {
		s.Expiry = v.Expiry.UnixMilli()
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// decodeShared reads a shared value back. Anything unexpected (not this
// version's JSON, unknown fields, past its expiry, a verdict that breaks an
// invariant) is an error, which the caller treats as a miss.
func (i *Introspector) decodeShared(b []byte, now time.Time) (authz.Introspection, time.Time, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var s sharedValue
	if err := d.Decode(&s); err != nil {
		return authz.Introspection{}, time.Time{}, errors.New("not a verdict")
	}
	if _, err := d.Token(); err == nil {
		return authz.Introspection{}, time.Time{}, errors.New("data after the verdict")
	}
	if s.V != sharedVersion {
		return authz.Introspection{}, time.Time{}, errors.New("other version")
	}
	until := time.UnixMilli(s.Until)
	if !now.Before(until) {
		return authz.Introspection{}, time.Time{}, errors.New("expired")
	}
	v := authz.Introspection{
		Active: s.Active, Description: s.Description,
		Sub: s.Sub, Audience: s.Audience, Scope: s.Scope,
	}
	if s.Expiry != 0 {
		v.Expiry = time.UnixMilli(s.Expiry)
	}
	if err := i.checkVerdict(v, now); err != nil {
		return authz.Introspection{}, time.Time{}, err
	}
	return v, until, nil
}
