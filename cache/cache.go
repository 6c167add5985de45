// Package cache keeps values read from the database for a short while, for hot
// paths that would otherwise read the same rows on every request.
package cache

import (
	"context"
	"sync"
	"time"
)

// Cache keeps values read from the database for a short while, for hot paths that
// would otherwise read the same rows on every request (a program by its API key, a
// program's integration). The zero value is not usable: set TTL. A value changes for
// other processes within TTL; Update changes it in this one at once.
type Cache[K comparable, V any] struct {
	TTL time.Duration

	mu sync.RWMutex
	m  map[K]cacheEntry[V]
	// gen counts Updates. A value loaded while one happened may have been read before
	// the change it announces: Get returns it to its caller but does not keep it, or
	// the next request would see the old value for a whole TTL.
	gen uint64
}

type cacheEntry[V any] struct {
	v   V
	exp time.Time
}

// maxCacheEntries bounds a cache's memory: past it the cache starts over.
const maxCacheEntries = 10_000

// Get returns the value for k, calling load when there is none or it is older than TTL.
// Errors are not cached.
func (c *Cache[K, V]) Get(ctx context.Context, k K, load func(context.Context) (V, error)) (V, error) {
	now := time.Now()
	c.mu.RLock()
	e, ok := c.m[k]
	gen := c.gen
	c.mu.RUnlock()
	if ok && now.Before(e.exp) {
		return e.v, nil
	}
	v, err := load(ctx)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) > maxCacheEntries {
		c.m = map[K]cacheEntry[V]{}
	}
	if c.gen == gen {
		c.m[k] = cacheEntry[V]{v: v, exp: now.Add(c.TTL)}
	}
	c.mu.Unlock()
	return v, nil
}

// Update replaces each cached value for which f says so, keeping its expiry. A load
// under way while Update runs is not kept (see gen).
func (c *Cache[K, V]) Update(f func(V) (V, bool)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, e := range c.m {
		if v, ok := f(e.v); ok {
			c.m[k] = cacheEntry[V]{v: v, exp: e.exp}
		}
	}
}
