package config

import (
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-authz/gatehouse/server"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// TestDefaultsParse: every default of the table parses as its variable
// would, and prints back as written (docs/configuration.md and the chart compare the
// written form).
func TestDefaultsParse(t *testing.T) {
	for _, s := range settings() {
		var c Config
		v := s.value(&c)
		if s.def == "" {
			continue
		}
		if err := v.Set(s.def); err != nil {
			t.Errorf("%s: default %q does not parse: %v", s.env, s.def, err)
			continue
		}
		if s.secret() {
			t.Errorf("%s: a secret has a default", s.env)
		}
		if got := v.String(); got != s.def {
			t.Errorf("%s: default %q prints back as %q", s.env, s.def, got)
		}
	}
}

// TestDefaultsAreTheComponents': the settings' defaults are the server's
// and its parts' own (server.DefaultConfig gathers them), so that a library
// user of server and the command start alike.
func TestDefaultsAreTheComponents(t *testing.T) {
	c := Default()
	c.JWTSecret = "defaults-test-secret"
	got, err := c.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := server.DefaultConfig()
	want.JWT.Secret = []byte("defaults-test-secret")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the settings' defaults differ from the components':\n got %+v\nwant %+v", got, want)
	}
}

// TestSettingsOwnersAndFields: every setting names its owner, and the
// server.Config field it becomes exists (errors of server.Config.Validate
// are given back the variable's name through it).
func TestSettingsOwnersAndFields(t *testing.T) {
	fields := reflect.TypeFor[server.Config]()
	seen := map[string]string{}
	for _, s := range settings() {
		if s.owner == "" {
			t.Errorf("%s has no owner", s.env)
		}
		if s.field == "" {
			continue
		}
		if _, ok := fields.FieldByName(s.field); !ok {
			t.Errorf("%s: server.Config has no field %s", s.env, s.field)
		}
		if prev, dup := seen[s.field]; dup {
			t.Errorf("%s and %s both become server.Config.%s", prev, s.env, s.field)
		}
		seen[s.field] = s.env
	}
}

// TestSettingError: the server's field errors name the variables.
func TestSettingError(t *testing.T) {
	sc := server.DefaultConfig()
	sc.CacheTTL = 0
	if err := SettingError(sc.Validate()); err == nil || err.Error() != "GATEHOUSE_CACHE_TTL: must be positive, got 0s" {
		t.Errorf("cache TTL: %v", err)
	}
	sc = server.DefaultConfig()
	sc.HeaderScope = sc.HeaderUserID
	if err := SettingError(sc.Validate()); err == nil || !strings.Contains(err.Error(), "GATEHOUSE_HEADER_SCOPE: \"x-auth-user-id\" is already used by GATEHOUSE_HEADER_USER_ID") {
		t.Errorf("duplicate header: %v", err)
	}
	var ce *server.ConfigError
	sc = server.DefaultConfig()
	sc.ShutdownTimeout = -time.Second
	if err := SettingError(sc.Validate()); err == nil || errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "GATEHOUSE_SHUTDOWN_TIMEOUT: ") {
		t.Errorf("shutdown timeout: %v (want the variable's name, not the field's)", err)
	}
	plain := errors.New("plain")
	if SettingError(plain) != plain || SettingError(nil) != nil {
		t.Error("SettingError changed an error that is not a field's")
	}
}

// TestLogValueIsTyped: numbers and booleans are logged as such (JSON
// numbers and booleans), secrets redacted, the Redis URL's password too.
func TestLogValueIsTyped(t *testing.T) {
	c := Default()
	c.JWTSecret = "typed-secret-value"
	c.RedisPassword = "typed-redis-password"
	c.RedisURL = "redis://u:url-password@h:1/0"
	logged := map[string]slog.Value{}
	for _, a := range c.LogValue().Group() {
		logged[a.Key] = a.Value
	}
	for key, kind := range map[string]slog.Kind{
		"cache_size": slog.KindInt64, "log_rate": slog.KindInt64, "token_cache_size": slog.KindInt64,
		"check_applications": slog.KindBool, "otel_insecure": slog.KindBool, "dev": slog.KindBool,
		"otel_sample_ratio": slog.KindFloat64, "cache_ttl": slog.KindString,
	} {
		if got := logged[key].Kind(); got != kind {
			t.Errorf("%s is logged as %s, want %s", key, got, kind)
		}
	}
	for key, want := range map[string]string{
		"jwt_secret": Redacted, "redis_password": Redacted, "redis_url": "redis://u:REDACTED@h:1/0",
	} {
		if got := logged[key].String(); got != want {
			t.Errorf("%s is logged as %q, want %q", key, got, want)
		}
	}
}

// TestHelpRedactsTheRedisURL: serve -h prints each flag's current value
// (the environment's) as its default; the Redis URL's password stays out.
func TestHelpRedactsTheRedisURL(t *testing.T) {
	var out strings.Builder
	_, err := Parse([]string{"-h"}, env(map[string]string{"GATEHOUSE_REDIS_URL": "redis://u:help-password@h:1/0"}), &out)
	if err == nil {
		t.Fatal("-h did not return flag.ErrHelp")
	}
	if strings.Contains(out.String(), "help-password") || !strings.Contains(out.String(), "redis://u:REDACTED@h:1/0") {
		t.Errorf("help shows the Redis URL unredacted, or not at all:\n%s", out.String())
	}
}

func TestUnknownVariables(t *testing.T) {
	got := UnknownVariables([]string{
		"PATH=/bin",
		"GATEHOUSE_JWT_SECRET=fine",
		"GATEHOUSE_JWT_SECRT=typo",
		"GATEHOUSE_REDIS_URI=redis://h:1",
		"GATEHOUSE_CACHETTL=1m",
		"GATEHOUSE_SOMETHING_ELSE_ENTIRELY=1",
		"GATEHOUSE_=x",
		"NOT_GATEHOUSE_JWT_SECRT=x",
	})
	want := []UnknownVariable{
		{"GATEHOUSE_JWT_SECRT", "GATEHOUSE_JWT_SECRET"},
		{"GATEHOUSE_REDIS_URI", "GATEHOUSE_REDIS_URL"},
		{"GATEHOUSE_CACHETTL", "GATEHOUSE_CACHE_TTL"},
		{"GATEHOUSE_SOMETHING_ELSE_ENTIRELY", ""},
		{"GATEHOUSE_", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("UnknownVariables = %+v\nwant %+v", got, want)
	}
	for _, s := range Settings() {
		if u := UnknownVariables([]string{s.Env + "=x"}); len(u) != 0 {
			t.Errorf("%s is reported unknown", s.Env)
		}
	}
}

func TestLevenshtein(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3},
		{"GATEHOUSE_JWT_SECRT", "GATEHOUSE_JWT_SECRET", 1}, {"abc", "abc", 0}, {"ab", "ba", 2},
	} {
		if got := levenshtein(c.a, c.b); got != c.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := levenshtein(c.b, c.a); got != c.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d (symmetry)", c.b, c.a, got, c.want)
		}
	}
}

// TestRedisConfigResolved: ServerConfig hands the server the Redis client
// settings with the password read from its file, and no Redis when none is
// set.
func TestRedisConfigResolved(t *testing.T) {
	c := Default()
	c.JWTSecret = "x"
	sc, err := c.ServerConfig()
	if err != nil || sc.Redis != nil {
		t.Fatalf("no Redis set: Redis %+v, %v", sc.Redis, err)
	}
	c.RedisURL = "redis://h:1/0"
	c.RedisPassword = "inline"
	sc, err = c.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	if want := (redisstore.ClientConfig{URL: "redis://h:1/0", Password: "inline"}); !reflect.DeepEqual(*sc.Redis, want) {
		t.Errorf("Redis = %+v, want %+v", *sc.Redis, want)
	}
}
