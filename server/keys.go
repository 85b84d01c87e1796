package server

import (
	"errors"
	"fmt"
	"os"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// keyFiles are the keys read from Config's key files (nil: no file).
type keyFiles struct {
	app, addons []authz.Key
}

// readKeyFiles reads and parses the key files in full. Errors name the
// file, never a key.
func readKeyFiles(cfg Config) (keyFiles, error) {
	var kf keyFiles
	var err error
	if cfg.JWTKeysFile != "" {
		if kf.app, err = readKeyFile(cfg.JWTKeysFile); err != nil {
			return keyFiles{}, fmt.Errorf("JWT keys: %w", err)
		}
	}
	if cfg.AddonsKeysFile != "" {
		if kf.addons, err = readKeyFile(cfg.AddonsKeysFile); err != nil {
			return keyFiles{}, fmt.Errorf("add-on JWT keys: %w", err)
		}
	}
	return kf, nil
}

func readKeyFile(path string) ([]authz.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	keys, err := authz.ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

// keysReloadable reloads the key files into az. Both kinds' new keys are
// checked before either is swapped in (authz.SetKeys), and the swap drops
// the cached verified tokens.
func keysReloadable(az *authz.Authorizer, cfg Config) *reloadable {
	var files []string
	for _, f := range []string{cfg.JWTKeysFile, cfg.AddonsKeysFile} {
		if f != "" {
			files = append(files, f)
		}
	}
	return &reloadable{
		what:  reloadWhatKeys,
		files: files,
		load: func() (func(), string, error) {
			kf, err := readKeyFiles(cfg)
			if err != nil {
				return nil, "", err
			}
			app := kf.app
			if app == nil {
				// Only the add-on keys come from a file: the application
				// key stays what it was configured as.
				app = keysOf(cfg.JWT)
			}
			if app == nil {
				return nil, "", errors.New("no JWT key")
			}
			commit, err := az.PrepareKeys(app, kf.addons)
			if err != nil {
				return nil, "", err
			}
			return commit, fmt.Sprintf("%d application key(s) %s, %d add-on key(s) %s",
				len(app), keyNames(app), len(kf.addons), keyNames(kf.addons)), nil
		},
	}
}

func keysOf(c authz.JWTConfig) []authz.Key {
	if len(c.Keys) > 0 {
		return c.Keys
	}
	if len(c.Secret) > 0 {
		return []authz.Key{{Secret: c.Secret}}
	}
	return nil
}

// keyNames lists the kids (or positions) of keys: never a key.
func keyNames(keys []authz.Key) string {
	out := "["
	for i, k := range keys {
		if i > 0 {
			out += " "
		}
		if k.ID != "" {
			out += k.ID
		} else {
			out += fmt.Sprintf("#%d", i+1)
		}
	}
	return out + "]"
}

// shortestKey is the length of c's shortest key (0: none).
func shortestKey(c authz.JWTConfig) int {
	n := 0
	for i, k := range keysOf(c) {
		if i == 0 || len(k.Secret) < n {
			n = len(k.Secret)
		}
	}
	return n
}
