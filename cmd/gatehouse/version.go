package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time: go build -ldflags "-X main.version=v1.2.3 -X main.commit=abc123".
// They are never assigned at run time.
var (
	version string
	commit  string
)

// buildVersion returns the version and commit: the link-time values, else
// what the Go toolchain recorded in the binary ("go install ...@v1.2.3"
// records the module version; a build in a Git checkout records vcs.revision
// unless -buildvcs=false), else "devel" and "unknown".
func buildVersion() (ver, rev string) {
	ver, rev = version, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if ver == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			ver = info.Main.Version
		}
		if rev == "" {
			modified := false
			for _, s := range info.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if rev != "" && modified {
				rev += "-dirty"
			}
		}
	}
	if ver == "" {
		ver = "devel"
	}
	if rev == "" {
		rev = "unknown"
	}
	return ver, rev
}

// versionString is the one-line version used in logs.
func versionString() string {
	ver, rev := buildVersion()
	return ver + " (" + rev + ")"
}

func runVersion(_ context.Context, e env, args []string) int {
	fs := flag.NewFlagSet("gatehouse version", flag.ContinueOnError)
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	ver, rev := buildVersion()
	fmt.Fprintf(e.stdout, "gatehouse %s\ncommit: %s\ngo: %s %s/%s\n", ver, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
