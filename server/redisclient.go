package server

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/gatehouse-authz/gatehouse/internal/config"
	"github.com/gatehouse-authz/gatehouse/userstore/redisstore"
)

// NewRedisClient builds the Redis client cfg describes (standalone,
// Sentinel or Cluster, with TLS and credentials), for serve and for the
// directory commands. It does not dial. Errors never contain a password.
func NewRedisClient(cfg config.Config) (redis.UniversalClient, redisstore.Mode, error) {
	cc, err := cfg.RedisClientConfig()
	if err != nil {
		return nil, "", err
	}
	client, mode, err := redisstore.NewUniversalClient(cc)
	if err != nil {
		return nil, "", fmt.Errorf("Redis: %w", err)
	}
	return client, mode, nil
}
