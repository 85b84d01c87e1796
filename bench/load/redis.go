package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/bench/workload"
)

func newRedis(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr})
}

// seedUsers writes n active users in gatehouse's schema
// (gatehouse:user:<id> active 1), pipelined.
func seedUsers(ctx context.Context, rdb *redis.Client, n int) error {
	const batch = 1000
	for lo := 0; lo < n; lo += batch {
		pipe := rdb.Pipeline()
		for i := lo; i < min(lo+batch, n); i++ {
			pipe.HSet(ctx, "gatehouse:user:"+workload.UserID(i), "active", "1")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("seed users: %w", err)
		}
	}
	return nil
}

// lookupCalls returns how many directory lookups Redis has served: the
// calls of HGET (gatehouse's lookup) and HGETALL, from INFO commandstats.
func lookupCalls(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	var total int64
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "cmdstat_hget" && name != "cmdstat_hgetall" && name != "cmdstat_hmget") {
			continue
		}
		for f := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return 0, fmt.Errorf("parse commandstats %q: %w", line, err)
				}
				total += n
			}
		}
	}
	return total, nil
}
