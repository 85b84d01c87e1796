package redisstore

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// sentinelRetry is the pause after a sentinel's subscription failed (the
// sentinel is down), so that the watch does not spin.
const sentinelRetry = time.Second

// SentinelWatch follows the master switches of a Sentinel deployment.
//
// go-redis follows them for commands, but closes only the command
// connections of a demoted master: a subscription stays on the old master,
// which hears nothing published on the new one until Sentinel reconfigures
// it (seconds later) and kills its clients. Whoever holds a subscription
// watches +switch-master with this and moves it at once.
type SentinelWatch struct {
	master    string
	sentinels []*redis.SentinelClient
	node      redis.Options // template of a data-node client; Addr unset
}

// NewSentinelWatch returns a watch of the Sentinel deployment c describes,
// with its sentinels' credentials and TLS settings. It does not dial.
func NewSentinelWatch(c ClientConfig) (*SentinelWatch, error) {
	mode, err := c.Mode()
	if err != nil {
		return nil, err
	}
	if mode != Sentinel {
		return nil, errors.New("not a Sentinel deployment")
	}
	uo, err := c.multiOptions(mode)
	if err != nil {
		return nil, err
	}
	fo := uo.Failover()
	w := &SentinelWatch{
		master: fo.MasterName,
		node: redis.Options{
			Username:              fo.Username,
			Password:              fo.Password,
			DB:                    fo.DB,
			TLSConfig:             fo.TLSConfig,
			ContextTimeoutEnabled: true,
			ReadBufferSize:        connBufferSize,
			WriteBufferSize:       connBufferSize,
		},
	}
	for _, addr := range fo.SentinelAddrs {
		w.sentinels = append(w.sentinels, redis.NewSentinelClient(&redis.Options{
			Addr:                  addr,
			Username:              fo.SentinelUsername,
			Password:              fo.SentinelPassword,
			TLSConfig:             fo.TLSConfig,
			ContextTimeoutEnabled: true,
			ReadBufferSize:        connBufferSize,
			WriteBufferSize:       connBufferSize,
		}))
	}
	return w, nil
}

// Master returns the monitored master's name.
func (w *SentinelWatch) Master() string { return w.master }

// Watch subscribes to +switch-master on every sentinel and calls switched
// with the new master's host:port each time one announces a switch of the
// watched master, until ctx is done. Each sentinel announces a switch, so
// switched may be called more than once for one switch, concurrently.
func (w *SentinelWatch) Watch(ctx context.Context, switched func(addr string)) {
	var wg sync.WaitGroup
	for _, sc := range w.sentinels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.watch(ctx, sc, switched)
		}()
	}
	wg.Wait()
}

func (w *SentinelWatch) watch(ctx context.Context, sc *redis.SentinelClient, switched func(addr string)) {
	ps := sc.Subscribe(ctx, "+switch-master")
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() }) // unblocks Receive
	defer func() {
		stop()
		_ = ps.Close()
	}()
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The sentinel is down: the next Receive dials it again
			// and subscribes again.
			select {
			case <-ctx.Done():
				return
			case <-time.After(sentinelRetry):
			}
			continue
		}
		m, ok := msg.(*redis.Message)
		if !ok {
			continue
		}
		// "<master name> <old ip> <old port> <new ip> <new port>"
		f := strings.Fields(m.Payload)
		if len(f) == 5 && f[0] == w.master {
			switched(net.JoinHostPort(f[3], f[4]))
		}
	}
}

// NodeClient returns a client of the data node at addr, with the
// deployment's credentials and TLS settings. The caller closes it.
func (w *SentinelWatch) NodeClient(addr string) *redis.Client {
	o := w.node
	o.Addr = addr
	return redis.NewClient(&o)
}

// Close closes the sentinel clients.
func (w *SentinelWatch) Close() error {
	var errs []error
	for _, sc := range w.sentinels {
		if err := sc.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
