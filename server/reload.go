package server

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the reloads, registered on the server's registry.
const (
	MetricConfigReloads           = "gatehouse_config_reloads_total"
	MetricConfigLastReloadSuccess = "gatehouse_config_last_reload_successful"
)

const (
	reloadSuccess, reloadFailure = "success", "failure"
	// defaultReloadCheckInterval is the backstop for changes no event
	// reported; kubelet itself refreshes mounted Secrets only every minute
	// or so.
	defaultReloadCheckInterval = 30 * time.Second
	// defaultReloadSettle is how long the files must stay quiet after an
	// event before they are read.
	defaultReloadSettle      = 200 * time.Millisecond
	reloadVersionLen         = 16 // hex digits of the files' SHA-256
	reloadWhatRoutes         = "routes"
	reloadWhatUsers          = "users"
	reloadWhatTLS            = "tls"
	reloadWhatKeys           = "keys"
	reloadErrorVersionPrefix = "error:"
)

// A reloadable is one piece of configuration read from files and swapped in
// whole while the server runs: the route table, the users file, the TLS
// certificate.
type reloadable struct {
	// what labels the metrics and names it in logs and /readyz?verbose.
	what string
	// files lists what it reads (the paths as configured).
	files []string
	// load reads the files and checks them in full; it swaps nothing in.
	// commit, called only when load succeeded and the files did not change
	// while being read, swaps the result in, in one atomic store. describe
	// says what was loaded (counts, names; never a secret).
	load func() (commit func(), describe string, err error)

	// Guarded by reloader.mu.
	version  string // hash of the files in use
	describe string
	loadedAt time.Time
	// failed is the version (or "error:" and the read error) last refused,
	// so that a bad file is logged once, not at every check; failErr and
	// failedAt describe it until a good version is loaded.
	failed   string
	failErr  string
	failedAt time.Time
}

// reloader keeps the reloadables current: it watches the directories of
// their files (fsnotify, inotify on Linux), checks every file at an interval
// as a backstop for events that never come (network file systems, a
// watcher that failed), and on Reload (SIGHUP).
//
// Kubernetes updates a mounted Secret or ConfigMap by writing a new
// directory and renaming its "..data" symlink over the old one: the file's
// own path never sees an event. The reloader therefore watches directories,
// not files, both the one holding the configured path and the one its
// symlinks lead to, and compares the files' content (a SHA-256) rather than
// trusting event names: any event in a watched directory leads to a check
// of every file after a short settling delay, and a file whose content did
// not change is not reloaded.
type reloader struct {
	log      *slog.Logger
	interval time.Duration
	settle   time.Duration

	mu    sync.Mutex
	items []*reloadable

	reloads  *prometheus.CounterVec
	lastOK   *prometheus.GaugeVec
	requests chan bool // Reload: true forces a retry of refused files
	stop     context.CancelFunc
	done     chan struct{}
}

func newReloader(logger *slog.Logger, reg prometheus.Registerer, interval time.Duration) *reloader {
	if interval <= 0 {
		interval = defaultReloadCheckInterval
	}
	r := &reloader{
		log:      logger,
		interval: interval,
		settle:   defaultReloadSettle,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricConfigReloads,
			Help: "Reloads of configuration files after a change, by what (routes, users, tls, keys) and result (success, failure: the previous version stays in use).",
		}, []string{"what", "result"}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MetricConfigLastReloadSuccess,
			Help: "1 when the files of what (routes, users, tls, keys) in use are the ones on disk, 0 when the last change was refused and an older version serves.",
		}, []string{"what"}),
		requests: make(chan bool, 1),
	}
	if reg != nil {
		reg.MustRegister(r.reloads, r.lastOK)
	}
	return r
}

// add loads it for the first time: an error refuses the start. Call it
// before start.
func (r *reloader) add(it *reloadable) error {
	version, err := fileVersion(it.files)
	if err != nil {
		return err
	}
	commit, describe, err := it.load()
	if err != nil {
		return err
	}
	commit()
	r.mu.Lock()
	defer r.mu.Unlock()
	it.version, it.describe, it.loadedAt = version, describe, time.Now()
	r.items = append(r.items, it)
	for _, res := range []string{reloadSuccess, reloadFailure} {
		r.reloads.WithLabelValues(it.what, res) // present at 0 from the start
	}
	r.lastOK.WithLabelValues(it.what).Set(1)
	return nil
}

// empty reports whether nothing is reloaded (built-in routes, Redis, no TLS).
func (r *reloader) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items) == 0
}

// start watches and checks until close.
func (r *reloader) start(ctx context.Context) {
	ctx, r.stop = context.WithCancel(context.WithoutCancel(ctx))
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		r.run(ctx)
	}()
}

// close stops the watcher and waits for it.
func (r *reloader) close() {
	if r.stop != nil {
		r.stop()
		<-r.done
	}
}

// request asks for a check of every file now; force also retries files
// refused before whose content did not change (an operator's SIGHUP after
// fixing what a file refers to). It does not wait.
func (r *reloader) request(force bool) {
	select {
	case r.requests <- force:
	default:
		if force {
			// A check is pending already; make sure the forced one runs.
			select {
			case <-r.requests:
			default:
			}
			select {
			case r.requests <- true:
			default:
			}
		}
	}
}

func (r *reloader) run(ctx context.Context) {
	if r.empty() {
		// Still answer Reload requests (nothing to do) without a watcher.
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.requests:
				r.log.Info("reload requested; no configuration file is reloadable")
			}
		}
	}
	w, err := fsnotify.NewWatcher()
	var events chan fsnotify.Event
	var watchErrs chan error
	if err != nil {
		r.log.Warn("cannot watch configuration files; checking them every interval instead",
			"interval", r.interval.String(), "error", err.Error())
	} else {
		defer w.Close()
		events, watchErrs = w.Events, w.Errors
	}
	watched := map[string]bool{}
	r.updateWatches(w, watched)

	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Op == fsnotify.Chmod {
				continue // kubelet and editors touch modes; content did not change
			}
			// Wait until the writes settle: an editor's or a copy's
			// several writes make one reload, not several (of which
			// the first ones would read a half-written file).
			settle.Reset(r.settle)
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			// An overflow loses events: check everything now.
			r.log.Warn("watching configuration files", "error", err.Error())
			r.check(false)
		case <-settle.C:
			r.check(false)
		case <-tick.C:
			r.check(false)
		case force := <-r.requests:
			r.log.Info("reload requested")
			r.check(force)
		}
		r.updateWatches(w, watched)
	}
}

// updateWatches watches the directories the files are in and, through
// symlinks, the directories they point to (Kubernetes' timestamped
// directory changes with every update), and stops watching the ones no
// longer used.
func (r *reloader) updateWatches(w *fsnotify.Watcher, watched map[string]bool) {
	if w == nil {
		return
	}
	want := map[string]bool{}
	r.mu.Lock()
	for _, it := range r.items {
		for _, f := range it.files {
			want[filepath.Dir(f)] = true
			if real, err := filepath.EvalSymlinks(f); err == nil {
				want[filepath.Dir(real)] = true
			}
		}
	}
	r.mu.Unlock()
	for dir := range want {
		if watched[dir] {
			continue
		}
		if err := w.Add(dir); err != nil {
			r.log.Debug("cannot watch a configuration directory; the periodic check covers it",
				"directory", dir, "error", err.Error())
			continue
		}
		watched[dir] = true
	}
	for dir := range watched {
		if !want[dir] {
			_ = w.Remove(dir) // may be gone already
			delete(watched, dir)
		}
	}
}

// check reloads every reloadable whose files changed.
func (r *reloader) check(force bool) {
	r.mu.Lock()
	items := slices.Clone(r.items)
	r.mu.Unlock()
	for _, it := range items {
		r.checkOne(it, force)
	}
}

func (r *reloader) checkOne(it *reloadable, force bool) {
	start := time.Now()
	version, err := fileVersion(it.files)
	r.mu.Lock()
	current, failed := it.version, it.failed
	r.mu.Unlock()
	if err != nil {
		// A file that cannot be read (removed, permissions) is a refused
		// version too: the one in use stays.
		r.refuse(it, reloadErrorVersionPrefix+err.Error(), err, force)
		return
	}
	switch {
	case version == current:
		if force {
			r.log.Info("configuration unchanged", "what", it.what, "version", current)
		}
		r.mu.Lock()
		if it.failed != "" {
			// The file went back to the version in use.
			it.failed, it.failErr = "", ""
			r.lastOK.WithLabelValues(it.what).Set(1)
		}
		r.mu.Unlock()
		return
	case version == failed && !force:
		return // refused and logged already
	}
	commit, describe, err := it.load()
	if err != nil {
		r.refuse(it, version, err, true)
		return
	}
	// The files may have changed while they were read (a write still in
	// progress): then what was parsed may mix two versions. Apply nothing;
	// the change's own event brings another check.
	if after, err := fileVersion(it.files); err != nil || after != version {
		r.log.Debug("configuration changed while being read; checking again", "what", it.what)
		r.request(false)
		return
	}
	commit()
	r.mu.Lock()
	prev := it.version
	it.version, it.describe, it.loadedAt = version, describe, time.Now()
	it.failed, it.failErr = "", ""
	r.mu.Unlock()
	r.reloads.WithLabelValues(it.what, reloadSuccess).Inc()
	r.lastOK.WithLabelValues(it.what).Set(1)
	r.log.Info("configuration reloaded", "what", it.what, "version", version, "previous", prev,
		"loaded", describe, "took", time.Since(start).String())
}

// refuse records a version that could not be loaded: the one in use stays.
// It logs and counts once per refused version (again when forced).
func (r *reloader) refuse(it *reloadable, version string, err error, log bool) {
	r.mu.Lock()
	again := it.failed == version
	it.failed, it.failErr, it.failedAt = version, err.Error(), time.Now()
	current := it.version
	r.mu.Unlock()
	if again && !log {
		return
	}
	r.reloads.WithLabelValues(it.what, reloadFailure).Inc()
	r.lastOK.WithLabelValues(it.what).Set(0)
	r.log.Error("configuration reload refused; the previous version stays in use",
		"what", it.what, "version_in_use", current, "error", err.Error())
}

// status describes each reloadable for /readyz?verbose: the version in use
// and, when the files on disk were refused, why.
func (r *reloader) status() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, it := range r.items {
		line := fmt.Sprintf("[+]config %s version %s loaded %s: %s (informational)",
			it.what, it.version, it.loadedAt.UTC().Format(time.RFC3339), it.describe)
		if it.failed != "" {
			line = fmt.Sprintf("[-]config %s version %s loaded %s: %s; the change seen %s was refused: %s (informational)",
				it.what, it.version, it.loadedAt.UTC().Format(time.RFC3339), it.describe,
				it.failedAt.UTC().Format(time.RFC3339), oneLine(it.failErr))
		}
		out = append(out, line)
	}
	return out
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// fileVersion hashes the content of files (with their names and lengths,
// so that no two sets of contents collide by concatenation) into the
// version reported in logs and /readyz?verbose. It is a hash of the whole
// set: a TLS key enters it along with its certificate, never alone.
func fileVersion(files []string) (string, error) {
	h := sha256.New()
	var n [8]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", f, err)
		}
		h.Write([]byte(f))
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:reloadVersionLen], nil
}
