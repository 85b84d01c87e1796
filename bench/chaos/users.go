package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/gatehouse-authz/gatehouse/bench/workload"
)

// kind is the role a user plays in the run.
type kind uint8

const (
	// kHotActive: a few active users asked all the time (always cached).
	kHotActive kind = iota
	// kColdActive: many active users, each asked rarely, so most checks
	// reach Redis: they show a directory that cannot answer at once.
	kColdActive
	// kDisabled: records with active=0.
	kDisabled
	// kHotUnknown, kColdUnknown: no record. They are only ever reached by
	// counting up to nKinds.
	kHotUnknown  //lint:ignore U1000 reached by counting up to nKinds
	kColdUnknown //lint:ignore U1000 reached by counting up to nKinds
	// kFlip: records the driver disables and enables over and over,
	// publishing each change on the invalidation channel.
	kFlip
	// kWrongType: a key that is not a hash (a string).
	kWrongType
	nKinds
)

func (k kind) String() string {
	return [...]string{"hot-active", "cold-active", "disabled", "hot-unknown", "cold-unknown", "flip", "wrong-typed"}[k]
}

// spec is the state a user's record is seeded with.
func (k kind) spec() recState {
	switch k {
	case kHotActive, kColdActive, kFlip:
		return stActive
	case kDisabled:
		return stInactive
	case kWrongType:
		return stWrongType
	default:
		return stMissing
	}
}

// population sizes and the share of checks (percent) each kind gets.
var (
	kindCount  = [nKinds]int{16, 4000, 16, 8, 1000, 4, 1}
	kindWeight = [nKinds]int{28, 30, 12, 6, 6, 16, 2}
)

// jwtSecret is the HMAC key gatehouse runs with during the chaos run.
const jwtSecret = "gatehouse-chaos-run-secret-0123456789abcdef"

// Claims Meet puts in a delegation token.
const (
	tokenClientID = "meet-chaos-app"
	tokenScope    = "rooms:list rooms:retrieve"
	tokenIssuer   = "lasuite-meet"
)

// user is one identity of the run with its pre-built requests.
type user struct {
	id    string
	kind  kind
	auth  string // "Bearer <token>"
	check *authv3.CheckRequest
}

func (u *user) key() string { return keyPrefix + u.id }

// population is every user of the run, by index, and the indexes of each
// kind.
type population struct {
	users  []user
	byKind [nKinds][]int
	cum    [nKinds]int // cumulative weights
}

// newPopulation creates the users and signs a token for each, as Meet
// does (HS256; user_id, client_id, delegated, scope, iss, iat, exp), valid
// for ttl.
func newPopulation(ttl time.Duration) (*population, error) {
	p := &population{}
	now := time.Now()
	sum := 0
	for k := range nKinds {
		sum += kindWeight[k]
		p.cum[k] = sum
		for i := range kindCount[k] {
			// Canonical lower-case UUIDs, so gatehouse looks them up as
			// they are; the first group tells the kind in logs.
			id := fmt.Sprintf("c4a05%03x-0000-4000-8000-%012x", int(k), i)
			tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
				"user_id":   id,
				"client_id": tokenClientID,
				"delegated": true,
				"scope":     tokenScope,
				"iss":       tokenIssuer,
				"iat":       now.Add(-time.Minute).Unix(),
				"exp":       now.Add(ttl).Unix(),
			}).SignedString([]byte(jwtSecret))
			if err != nil {
				return nil, fmt.Errorf("sign token: %w", err)
			}
			auth := "Bearer " + tok
			p.byKind[k] = append(p.byKind[k], len(p.users))
			p.users = append(p.users, user{id: id, kind: k, auth: auth, check: workload.CheckRequest(auth)})
		}
	}
	if sum != 100 {
		return nil, fmt.Errorf("kind weights sum to %d, want 100", sum)
	}
	return p, nil
}

// pick draws a user: a kind by weight, then a user of that kind.
func (p *population) pick(rng *rand.Rand) int {
	r := rng.IntN(100)
	for k := range nKinds {
		if r < p.cum[k] {
			ids := p.byKind[k]
			return ids[rng.IntN(len(ids))]
		}
	}
	return p.byKind[kHotActive][0] // not reached: newPopulation checks the weights sum to 100
}
