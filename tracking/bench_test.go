package tracking

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/referd/referd/store"
)

// BenchmarkClickBeacons sends click beacons from 64 concurrent clients over
// loopback HTTP to a tracking handler on real PostgreSQL (TEST_DATABASE_URL), as
// browsers send them: text/plain JSON, one of 100 referrers, one of 20,000
// visitors. It reports beacons/s and the latency percentiles (BENCHMARKS.md):
//
//	go test -run '^$' -bench ClickBeacons -benchtime 300000x ./tracking/
func BenchmarkClickBeacons(b *testing.B) {
	const clients, referrers, visitors = 64, 100, 20_000
	e := newEnv(b)
	p := e.program("https://shop.test", "")
	var customers []store.Customer
	for i := range referrers {
		customers = append(customers, e.customer(p, fmt.Sprintf("ref%d", i)))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	beacon := func(r *rand.Rand) error {
		body := fmt.Sprintf(`{"program":%q,"key":"ref%d"}`, p.ID, r.IntN(referrers))
		req, _ := http.NewRequest("POST", e.srv.URL+"/track/click", strings.NewReader(body))
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		v := r.IntN(visitors)
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.%d.%d", v/250, v%250))
		req.Header.Set("User-Agent", "Mozilla/5.0 (bench)")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	}
	// Warm up: the caches, the day's salt, the connections and prepared statements.
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 1))
			for range 20 {
				if err := beacon(r); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
	warm := int64(clients * 20)

	lat := make([][]time.Duration, clients)
	var next atomic.Int64
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 2))
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := beacon(r); err != nil {
					if failed.Add(1) < 5 {
						b.Error(err)
					}
					continue
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(q float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(q*float64(len(all))))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "beacons/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
	b.ReportMetric(0, "ns/op") // the rate above says it; ns/op of a parallel run misleads

	// Every beacon answered 204 was counted.
	var total int64
	for _, c := range customers {
		n, _ := e.stats(c)
		total += n
	}
	if want := warm + int64(b.N) - failed.Load(); total != want {
		b.Errorf("%d clicks counted, want %d", total, want)
	}
}
