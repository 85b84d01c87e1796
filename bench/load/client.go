package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gatehouse-authz/gatehouse/bench/workload"
)

// checkMethod is the full gRPC method name of Envoy's ext_authz Check.
const checkMethod = "/envoy.service.auth.v3.Authorization/Check"

// clients is a set of gRPC connections to one server.
type clients struct {
	conns []*grpc.ClientConn
}

func dial(addr string, n int) (*clients, error) {
	c := &clients{}
	for range n {
		conn, err := grpc.NewClient(addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(workload.RawCodec{})),
		)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		conn.Connect()
		c.conns = append(c.conns, conn)
	}
	return c, nil
}

func (c *clients) close() {
	for _, conn := range c.conns {
		conn.Close()
	}
}

// runResult is what the client saw during one measured run.
type runResult struct {
	checks    int
	errors    int // transport errors and unexpected answers
	elapsed   time.Duration
	latencies []time.Duration // sorted
}

func (r runResult) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.latencies)-1))
	return r.latencies[i]
}

// firstError keeps the first unexpected answer of a run for the report.
type firstError struct {
	once sync.Once
	err  error
}

func (f *firstError) set(err error) { f.once.Do(func() { f.err = err }) }

// drive runs concurrency goroutines, spread over the connections, each
// sending one Check at a time until the phase ends: warm-up (not recorded)
// then measure. It stops by itself after warmup+measure or after
// maxChecks recorded checks, whichever comes first. wantCode is the
// CheckResponse status code every answer must carry.
func drive(ctx context.Context, c *clients, w *workload.Workload, wantCode int32, concurrency int, warmup, measure time.Duration, maxChecks int, onMeasure func()) (runResult, error) {
	perWorker := maxChecks / concurrency
	if perWorker < 1 {
		perWorker = 1
	}
	var (
		wg       sync.WaitGroup
		measured = make([][]time.Duration, concurrency)
		errs     = make([]int, concurrency)
		first    firstError
	)
	runCtx, cancel := context.WithTimeout(ctx, warmup+measure+10*time.Second)
	defer cancel()

	start := time.Now()
	measureAt := start.Add(warmup)
	endAt := measureAt.Add(measure)
	// Workers record only requests that start inside the measured window.
	for g := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := c.conns[g%len(c.conns)]
			resp := new(workload.StatusCode)
			lat := make([]time.Duration, 0, 1024)
			n := len(w.Requests)
			idx := g * n / concurrency
			for {
				t0 := time.Now()
				if !t0.Before(endAt) || len(lat) >= perWorker || runCtx.Err() != nil {
					break
				}
				req := w.Requests[idx%n]
				idx++
				err := conn.Invoke(runCtx, checkMethod, req, resp)
				d := time.Since(t0)
				if err == nil && resp.Code != wantCode {
					err = fmt.Errorf("got status code %d, want %d", resp.Code, wantCode)
				}
				if t0.Before(measureAt) {
					continue
				}
				if err != nil {
					errs[g]++
					first.set(err)
					continue
				}
				lat = append(lat, d)
			}
			measured[g] = lat
		}()
	}

	// Snapshot process counters when the measured window opens.
	select {
	case <-time.After(time.Until(measureAt)):
		onMeasure()
	case <-ctx.Done():
	}
	wg.Wait()
	elapsed := time.Since(measureAt)
	if err := ctx.Err(); err != nil {
		return runResult{}, fmt.Errorf("load run interrupted: %w", context.Cause(ctx))
	}

	var r runResult
	r.elapsed = elapsed
	for g := range concurrency {
		r.latencies = append(r.latencies, measured[g]...)
		r.errors += errs[g]
	}
	r.checks = len(r.latencies)
	slices.Sort(r.latencies)
	if r.checks == 0 {
		return r, errors.Join(errors.New("no successful check in the measured window"), first.err)
	}
	if first.err != nil {
		return r, fmt.Errorf("%d of %d checks failed; first: %w", r.errors, r.errors+r.checks, first.err)
	}
	return r, nil
}

// prime sends every request of w once, 16 at a time, and checks the answers.
func prime(ctx context.Context, c *clients, w *workload.Workload, wantCode int32) error {
	const workers = 16
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var (
		wg    sync.WaitGroup
		first firstError
	)
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := c.conns[g%len(c.conns)]
			resp := new(workload.StatusCode)
			for i := g; i < len(w.Requests); i += workers {
				err := conn.Invoke(ctx, checkMethod, w.Requests[i], resp)
				if err == nil && resp.Code != wantCode {
					err = fmt.Errorf("got status code %d, want %d", resp.Code, wantCode)
				}
				if err != nil {
					first.set(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return first.err
}
