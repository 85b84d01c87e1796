package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/gatehouse-authz/gatehouse/authz"
	"github.com/gatehouse-authz/gatehouse/internal/config"
)

// runToken prints a delegation token shaped like Meet's /token answer, signed
// with the configured secret, algorithm, issuer and audience; with --addon,
// an add-on token (2026.08 profile) signed with the add-on settings.
func runToken(_ context.Context, e env, args []string) int {
	cfg := config.Default()
	fs := flag.NewFlagSet("gatehouse token", flag.ContinueOnError)
	b := config.Bind(&cfg, fs, config.GroupJWT, e.lookup)
	for alias, name := range map[string]string{"issuer": "jwt-issuer", "audience": "jwt-audience", "algorithm": "jwt-algorithm"} {
		if err := b.Alias(alias, name); err != nil {
			return fail(e, err)
		}
	}
	var spec authz.TokenSpec
	fs.StringVar(&spec.UserID, "user-id", "", "the user the application acts for (token claim user_id; required)")
	fs.StringVar(&spec.ClientID, "client-id", "", "the application's client id (token claim client_id; required)")
	fs.StringVar(&spec.Scope, "scope", "", "space-separated scopes (token claim scope)")
	fs.DurationVar(&spec.TTL, "ttl", time.Hour, "token lifetime")
	fs.BoolVar(&spec.Addon, "addon", false, "mint an add-on token (no client_id, no delegated) with the GATEHOUSE_ADDONS_JWT_* settings (2026.08 profile)")
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if err := b.Finish(); err != nil {
		return fail(e, err)
	}
	warnUnknownVariablesOnStderr(e)
	switch {
	case spec.UserID == "":
		return fail(e, errors.New("token: --user-id is required"))
	case spec.ClientID == "" && !spec.Addon:
		return fail(e, errors.New("token: --client-id is required"))
	case spec.ClientID != "" && spec.Addon:
		return fail(e, errors.New("token: an add-on token has no client id: drop --client-id"))
	case spec.TTL <= 0:
		return fail(e, fmt.Errorf("token: --ttl must be positive, got %s", spec.TTL))
	case spec.TTL%time.Second != 0:
		return fail(e, fmt.Errorf("token: --ttl must be whole seconds, got %s", spec.TTL))
	}
	var jwt authz.JWTConfig
	var err error
	if spec.Addon {
		if !cfg.HasAddonsSecret() {
			return fail(e, errors.New("token: --addon needs GATEHOUSE_ADDONS_JWT_SECRET_FILE (--addons-jwt-secret-file) or GATEHOUSE_ADDONS_JWT_SECRET (--addons-jwt-secret)"))
		}
		jwt, err = cfg.Addons()
	} else {
		if err := cfg.ValidateJWT(); err != nil {
			return fail(e, err)
		}
		jwt, err = cfg.JWT()
	}
	if err != nil {
		return fail(e, err)
	}
	resp, err := authz.IssueToken(jwt, spec)
	if err != nil {
		return fail(e, err)
	}
	out, err := json.MarshalIndent(resp, "", "  ")
	if err != nil {
		return fail(e, fmt.Errorf("token: encode: %w", err))
	}
	fmt.Fprintf(e.stdout, "%s\n", out)
	return exitOK
}
