package pgorigin

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-authz/gatehouse/userstore"
)

// Channel is the notification channel TriggerSQL's triggers notify and
// Listen listens on. Payloads are "user:<id>" and "app:<client id>".
const Channel = "gatehouse_invalidate"

// ListenOptions tune Listen. Zero values select the defaults.
type ListenOptions struct {
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts, which doubles from the first to the second (defaults 100ms
	// and 10s); each wait is jittered by up to a quarter so replicas do not
	// reconnect in step.
	MinBackoff, MaxBackoff time.Duration
	// PingInterval is how long the connection may stay silent before
	// Listen checks it with a round trip (default 15s): a connection cut
	// without a reset (a dead peer, a dropped route) would otherwise go
	// unnoticed and notifications missed.
	PingInterval time.Duration
}

func (l ListenOptions) withDefaults() ListenOptions {
	l.MinBackoff = orDefault(l.MinBackoff, 100*time.Millisecond)
	l.MaxBackoff = orDefault(l.MaxBackoff, 10*time.Second)
	l.MaxBackoff = max(l.MaxBackoff, l.MinBackoff)
	l.PingInterval = orDefault(l.PingInterval, 15*time.Second)
	return l
}

// Listen follows the database's invalidation notifications until ctx is
// done, then returns ctx's error. It uses a connection of its own, outside
// the lookup pool.
//
// onChange is called for each record that changed. onReset is called after
// each successful LISTEN (the first one included), since changes made while
// gatehouse was not listening were missed: the caller drops everything it
// cached. A payload Listen cannot read also calls onReset (fail safe). The
// callbacks run on Listen's goroutine, one at a time; they must not block
// for long, since notifications queue behind them.
//
// A lost connection is reconnected with capped exponential backoff; every
// failure is logged (without the password).
func (o *Origin) Listen(ctx context.Context, onChange func(kind userstore.Kind, id string), onReset func()) error {
	return userstore.Reconnect(ctx, o.listen.MinBackoff, o.listen.MaxBackoff,
		func(ctx context.Context, connected func()) error {
			return o.listenOnce(ctx, onChange, onReset, connected)
		},
		func(err error, wait time.Duration) {
			o.log.Warn("directory notifications: connection lost, reconnecting",
				"origin", o.redacted, "error", o.scrub(err).Error(), "retry_in", wait)
		})
}

// listenOnce connects, listens and delivers notifications until the
// connection fails or ctx is done. connected is called once LISTEN is in
// effect.
func (o *Origin) listenOnce(ctx context.Context, onChange func(userstore.Kind, string), onReset func(), connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, o.connCfg.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	connected()
	o.log.Info("directory notifications: listening", "origin", o.redacted, "channel", Channel)
	onReset()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, o.listen.PingInterval)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			kind, id, ok := ParsePayload(n.Payload)
			if !ok {
				o.log.Warn("directory notifications: unreadable payload, dropping every cached record",
					"channel", n.Channel, "payload_bytes", len(n.Payload))
				onReset()
				continue
			}
			onChange(kind, id)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Silence for PingInterval: check that the server is still
			// there. A timeout leaves pgconn's connection usable.
			pingCtx, cancel := context.WithTimeout(ctx, o.listen.PingInterval)
			err := conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		default:
			return fmt.Errorf("wait for notifications: %w", err)
		}
	}
}

// ParsePayload reads a notification payload: "user:<id>" or "app:<id>" with
// a non-empty id, the format every change feed shares (userstore.ParseChange).
func ParsePayload(p string) (userstore.Kind, string, bool) {
	return userstore.ParseChange(p)
}

// TriggerOptions describe the schema TriggerSQL writes triggers for. Zero
// values select Meet's current schema.
type TriggerOptions struct {
	// UserActiveColumn and AppActiveColumn name the flag columns (default
	// "is_active"; Meet releases before March 2026 name the application's
	// "active").
	UserActiveColumn string
	AppActiveColumn  string
}

var identifierRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// TriggerSQL returns the SQL that installs, on Meet's meet_user and
// meet_application tables, triggers notifying Channel when a record's
// active flag changes or the record is deleted. It can be run again (it
// replaces what it installed) and needs the tables' owner. The triggers run
// in the writing transaction: PostgreSQL delivers the notification when it
// commits, and drops it if it rolls back.
func TriggerSQL(opts TriggerOptions) (string, error) {
	userCol := orDefault(opts.UserActiveColumn, "is_active")
	appCol := orDefault(opts.AppActiveColumn, "is_active")
	for _, c := range []string{userCol, appCol} {
		if !identifierRE.MatchString(c) {
			return "", fmt.Errorf("pgorigin: %q is not a plain lower-case column name", c)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `-- gatehouse: notify gatehouse (LISTEN %[1]s) when a user or an
-- application is deactivated, reactivated or deleted, so that every replica
-- drops what it cached for it at once. Run as the owner of the tables.
BEGIN;
`, Channel)
	writeTrigger(&b, "meet_user", "id", userCol, userstore.User.String())
	writeTrigger(&b, "meet_application", "client_id", appCol, userstore.App.String())
	b.WriteString("COMMIT;\n")
	return b.String(), nil
}

func writeTrigger(b *strings.Builder, table, key, col, kind string) {
	fn := "gatehouse_notify_" + table
	fmt.Fprintf(b, `
CREATE OR REPLACE FUNCTION %[1]s() RETURNS trigger
LANGUAGE plpgsql AS $gatehouse$
BEGIN
  PERFORM pg_notify('%[2]s', '%[3]s:' || OLD.%[4]s::text);
  RETURN NULL;
END
$gatehouse$;

DROP TRIGGER IF EXISTS gatehouse_invalidate_update ON %[5]s;
CREATE TRIGGER gatehouse_invalidate_update
  AFTER UPDATE OF %[6]s ON %[5]s
  FOR EACH ROW
  WHEN (OLD.%[6]s IS DISTINCT FROM NEW.%[6]s)
  EXECUTE FUNCTION %[1]s();

DROP TRIGGER IF EXISTS gatehouse_invalidate_delete ON %[5]s;
CREATE TRIGGER gatehouse_invalidate_delete
  AFTER DELETE ON %[5]s
  FOR EACH ROW
  EXECUTE FUNCTION %[1]s();
`, fn, Channel, kind, key, table, col)
}
