package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/referd/referd/cache"
)

func TestCacheReusesUntilTTLAndUpdates(t *testing.T) {
	c := &cache.Cache[string, int]{TTL: time.Hour}
	loads := 0
	load := func(context.Context) (int, error) { loads++; return loads, nil }
	for i := 0; i < 3; i++ {
		if v, _ := c.Get(context.Background(), "a", load); v != 1 {
			t.Fatalf("got %d, want the first load", v)
		}
	}
	c.Update(func(v int) (int, bool) { return 42, v == 1 })
	if v, _ := c.Get(context.Background(), "a", load); v != 42 || loads != 1 {
		t.Errorf("after Update: %d (loads %d)", v, loads)
	}
	expired := &cache.Cache[string, int]{TTL: -time.Second}
	expired.Get(context.Background(), "a", load)
	expired.Get(context.Background(), "a", load)
	if loads != 3 {
		t.Errorf("an expired value was reused: %d loads", loads)
	}
}

// A value loaded while an Update announced a change may be the old one: it is not
// kept, so the next Get reads again.
func TestCacheDropsALoadRacingAnUpdate(t *testing.T) {
	c := &cache.Cache[string, string]{TTL: time.Hour}
	ctx := context.Background()
	v, _ := c.Get(ctx, "a", func(context.Context) (string, error) {
		c.Update(func(string) (string, bool) { return "", false }) // the change commits meanwhile
		return "old", nil
	})
	if v != "old" {
		t.Fatalf("Get = %q, want the loaded value", v)
	}
	if v, _ := c.Get(ctx, "a", func(context.Context) (string, error) { return "new", nil }); v != "new" {
		t.Errorf("after a load that raced an Update, Get = %q, want a fresh load", v)
	}
}
