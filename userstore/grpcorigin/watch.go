package grpcorigin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	directoryv1 "github.com/gatehouse-authz/gatehouse/proto/gatehouse/directory/v1"
	"github.com/gatehouse-authz/gatehouse/userstore"
)

// Watch follows the server's WatchChanges stream until ctx is done, then
// returns ctx's error.
//
// onChange is called for each record that changed. onReset is called when
// a stream is established (its headers arrived: the first one included),
// since changes made while gatehouse was not watching were missed, and for
// every reset event or event of a kind this client does not know (fail
// safe): the caller drops everything it cached. The callbacks run on Watch's
// goroutine, one at a time.
//
// A stream that ends or fails is opened again with capped exponential
// backoff; every failure is logged.
func (o *Origin) Watch(ctx context.Context, onChange func(kind userstore.Kind, id string), onReset func()) error {
	return userstore.Reconnect(ctx, o.watch.MinBackoff, o.watch.MaxBackoff,
		func(ctx context.Context, connected func()) error {
			return o.watchOnce(ctx, onChange, onReset, connected)
		},
		func(err error, wait time.Duration) {
			o.log.Warn("directory changes: stream lost, reconnecting",
				"origin", o.target, "error", err.Error(), "retry_in", wait)
		})
}

// watchOnce follows one stream until it fails or ctx is done. connected is
// called once the stream's headers arrived.
func (o *Origin) watchOnce(ctx context.Context, onChange func(userstore.Kind, string), onReset func(), connected func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream
	stream, err := o.client.WatchChanges(ctx, &directoryv1.WatchChangesRequest{})
	if err != nil {
		return fmt.Errorf("open the stream: %w", err)
	}
	md, err := stream.Header()
	if err != nil {
		return fmt.Errorf("open the stream: %w", err)
	}
	if md == nil {
		// Ended without headers (an error status, such as UNIMPLEMENTED):
		// the status comes with Recv.
		_, err := stream.Recv()
		return fmt.Errorf("the stream ended at once: %w", err)
	}
	connected()
	o.log.Info("directory changes: watching", "origin", o.target)
	onReset()
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return errors.New("the server ended the stream")
		}
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		switch e := ev.GetEvent().(type) {
		case *directoryv1.WatchChangesResponse_UserId:
			if e.UserId != "" {
				onChange(userstore.User, e.UserId)
				continue
			}
		case *directoryv1.WatchChangesResponse_ClientId:
			if e.ClientId != "" {
				onChange(userstore.App, e.ClientId)
				continue
			}
		case *directoryv1.WatchChangesResponse_Reset_: // "reset"; Reset_ in Go, beside the method Reset
			onReset()
			continue
		}
		// No event, an empty id or a kind of event from a newer protocol:
		// what changed is unknown, so everything may have.
		o.log.Warn("directory changes: unknown event, dropping every cached record", "origin", o.target)
		onReset()
	}
}
