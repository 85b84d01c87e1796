package server

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/authz/routes"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// livePolicy is the route table in use, swapped whole when the routes file
// changes: a request is matched against one table, the old or the new,
// never a mix. Allow (asked only after Match said UnknownAction) loads the
// table again, so a swap in between may choose between 405 and 403 from
// the newer table: both refusals, never an allow.
type livePolicy struct {
	cur atomic.Pointer[routes.Set]
}

var _ authz.MethodPolicy = (*livePolicy)(nil)

// Match implements authz.Policy.
func (p *livePolicy) Match(req *authz.Request) authz.Rule { return p.cur.Load().Match(req) }

// Allow implements authz.MethodPolicy.
func (p *livePolicy) Allow(req *authz.Request) string { return p.cur.Load().Allow(req) }

// reloadable returns the reloadable of a routes file (spec names a file, not
// a built-in table): routes.Resolve parses and checks the whole file before
// anything is swapped in.
func (p *livePolicy) reloadable(spec string) *reloadable {
	return &reloadable{
		what:  reloadWhatRoutes,
		files: []string{spec},
		load: func() (func(), string, error) {
			set, err := routes.Resolve(spec)
			if err != nil {
				return nil, "", err
			}
			t := set.Default()
			return func() { p.cur.Store(set) }, fmt.Sprintf("routes file %s, table %q (%d routes)", spec, t.Name(), t.Len()), nil
		},
	}
}

// isRoutesFile reports whether a GATEHOUSE_ROUTES value names a file rather
// than a built-in table.
func isRoutesFile(spec string) bool {
	switch spec {
	case "", routes.AuthenticateTableName, routes.MeetTableName:
		return false
	}
	return true
}

// liveUsers is the users file's directory, swapped whole when the file
// changes. Nothing caches its answers (the in-process cache is Redis's), so
// a user disabled in the file is refused from the next request on.
type liveUsers struct {
	cur atomic.Pointer[userstore.Memory]
}

// Lookup implements userstore.Directory.
func (u *liveUsers) Lookup(ctx context.Context, kind userstore.Kind, id string) (userstore.Status, error) {
	return u.cur.Load().Lookup(ctx, kind, id)
}

// UserBySub implements userstore.Subjects from the file's subs.
func (u *liveUsers) UserBySub(ctx context.Context, sub string) (string, bool, error) {
	return u.cur.Load().UserBySub(ctx, sub)
}

// reloadable returns the users file's reloadable: every record is checked
// (userstore.LoadFile refuses the whole file for one bad record) before the
// new directory replaces the old.
func (u *liveUsers) reloadable(cfg Config) *reloadable {
	normalize := userIDNormalizer(cfg)
	return &reloadable{
		what:  reloadWhatUsers,
		files: []string{cfg.UsersFile},
		load: func() (func(), string, error) {
			m, err := userstore.LoadFile(cfg.UsersFile, userstore.MemoryOptions{NormalizeUserID: normalize})
			if err != nil {
				return nil, "", err
			}
			return func() { u.cur.Store(m) }, fmt.Sprintf("users file %s (%d users, %d applications)",
				cfg.UsersFile, m.Len(userstore.User), m.Len(userstore.App)), nil
		},
	}
}

// newUsersFileDirectory loads the users file and registers it with
// reloads, which New always supplies.
func newUsersFileDirectory(cfg Config, reloads *reloader) (*directory, error) {
	u := &liveUsers{}
	if err := reloads.add(u.reloadable(cfg)); err != nil {
		return nil, err
	}
	return &directory{Directory: u, subjects: u, describe: "users file " + cfg.UsersFile}, nil
}
