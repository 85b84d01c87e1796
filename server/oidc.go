package server

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/oidc"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// newIntrospection builds the OIDC access-token kind when
// cfg.OIDC.IntrospectionURL is set (docs/oidc.md): the introspector, with
// Redis as the verdict cache every replica shares when there is one, and
// the directory's sub lookups behind an in-process cache. Both are nil when
// it is not set.
func (s *Server) newIntrospection(cfg Config, logger *slog.Logger, opts Options) (authz.Introspector, userstore.Subjects, error) {
	if cfg.OIDC.IntrospectionURL == "" {
		return nil, nil, nil
	}
	if s.dir.subjects == nil {
		return nil, nil, errors.New("OIDC access tokens: the directory cannot find users by sub (a gRPC directory origin cannot; use Meet's database, Redis or a users file)")
	}
	oc := cfg.OIDC
	oc.Shared = s.dir.verdicts
	oc.Observer = s.metrics
	oc.Logger = logger
	oc.Now = opts.Now
	in, err := oidc.New(oc)
	if err != nil {
		return nil, nil, fmt.Errorf("OIDC access tokens: %w", err)
	}
	subjects := s.dir.subjects
	if s.dir.client != nil || s.dir.origin != nil {
		// A remote directory: subjects are cached in process as records
		// are. A sub names the same user for good in Meet, and the id it
		// gives is looked up afresh on every request (status, deletion),
		// so the cache can only be stale about a sub moved to another
		// user, for at most the cache's TTL.
		s.dir.subjectCache = userstore.NewSubjectCache(subjects, userstore.SubjectCacheOptions{
			TTL:         cfg.CacheTTL,
			NegativeTTL: zeroMeansNoCache(cfg.CacheNegativeTTL),
			Size:        cfg.CacheSize,
			Now:         opts.Now,
		})
		subjects = s.dir.subjectCache
	}
	return in, subjects, nil
}
