package metrics

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/dindstore/dindstore/cache"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

var cacheLabels = []string{"key", "kind"}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("dindstore_"+name, help, labels, nil)
}

var (
	capDesc   = desc("cache_cap_bytes", "Size cap of the cache (0 for uncapped kinds).", cacheLabels...)
	allocDesc = desc("cache_allocated_bytes", "Bytes the cache allocates on the host (st_blocks*512).", cacheLabels...)
	usedDesc  = desc("cache_used_bytes", "Bytes in use inside the cache's filesystem.", cacheLabels...)
	inUseDesc = desc("cache_in_use", "1 while a holder has the cache.", cacheLabels...)
	stateDesc = desc("cache_state", "1 for the cache's state (idle, in-use, orphaned, release-failed, damaged), 0 for the others.",
		append(append([]string{}, cacheLabels...), "state")...)
	lastUsedDesc  = desc("cache_last_used_timestamp_seconds", "When the cache was last used (created, if never).", cacheLabels...)
	hitsDesc      = desc("cache_hits_total", "Jobs that asked for this warm cache and got a clone.", cacheLabels...)
	missesDesc    = desc("cache_misses_total", "Jobs that asked for this warm cache and started cold.", cacheLabels...)
	cachesDesc    = desc("caches", "Number of caches.")
	hostFreeDesc  = desc("host_free_bytes", "Free bytes of the host filesystem holding the root.")
	hostSizeDesc  = desc("host_size_bytes", "Size of the host filesystem holding the root.")
	hostFreeIDesc = desc("host_free_inodes", "Free inodes of the host filesystem holding the root.")
	hostInodeDesc = desc("host_inodes", "Inodes of the host filesystem holding the root.")
	prunedDesc    = desc("prune_removed_caches_total", "Caches removed by prune.")
	prunedBytes   = desc("prune_freed_bytes_total", "Host bytes freed by prune.")
	gcDesc        = desc("gc_removed_total", "Things removed or repaired by gc.")
	upDesc        = desc("up", "1 when the root could be read.")
)

// Collector collects dindstore's metrics from a root on every scrape.
type Collector struct {
	root *cache.Root
}

// NewCollector returns a collector for the caches under root.
func NewCollector(root *cache.Root) *Collector { return &Collector{root: root} }

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{capDesc, allocDesc, usedDesc, inUseDesc, lastUsedDesc, hitsDesc,
		missesDesc, cachesDesc, hostFreeDesc, hostSizeDesc, hostFreeIDesc, hostInodeDesc, prunedDesc, prunedBytes, gcDesc, upDesc} {
		ch <- d
	}
}

// Collect reads the caches, the host and the counters.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	entries, err := c.root.List(ctx, cache.ListOptions{})
	if err != nil {
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(cachesDesc, prometheus.GaugeValue, float64(len(entries)))
	for _, e := range entries {
		collectEntry(ch, e)
	}
	if sum, err := c.root.Summarize(entries); err == nil {
		gauge(ch, hostFreeDesc, float64(sum.HostFreeBytes))
		gauge(ch, hostSizeDesc, float64(sum.HostBytes))
		gauge(ch, hostFreeIDesc, float64(sum.HostFreeInodes))
		gauge(ch, hostInodeDesc, float64(sum.HostInodes))
	}
	if n, err := c.root.Counters(); err == nil {
		ch <- prometheus.MustNewConstMetric(prunedDesc, prometheus.CounterValue, float64(n.PrunedCaches))
		ch <- prometheus.MustNewConstMetric(prunedBytes, prometheus.CounterValue, float64(n.PrunedBytes))
		ch <- prometheus.MustNewConstMetric(gcDesc, prometheus.CounterValue, float64(n.GCRemoved))
	}
}

func collectEntry(ch chan<- prometheus.Metric, e cache.Entry) {
	labels := []string{e.Key, string(e.Kind)}
	inUse := 0.0
	if e.State == cache.StateInUse {
		inUse = 1
	}
	last := e.Created
	if e.LastUsed != nil {
		last = *e.LastUsed
	}
	gauge(ch, capDesc, float64(e.CapBytes), labels...)
	gauge(ch, allocDesc, float64(e.AllocatedBytes), labels...)
	gauge(ch, usedDesc, float64(e.UsedBytes), labels...)
	gauge(ch, inUseDesc, inUse, labels...)
	for _, st := range cache.States {
		v := 0.0
		if e.State == st {
			v = 1
		}
		gauge(ch, stateDesc, v, append(append([]string{}, labels...), st)...)
	}
	gauge(ch, lastUsedDesc, float64(last.UnixNano())/1e9, labels...)
	ch <- prometheus.MustNewConstMetric(hitsDesc, prometheus.CounterValue, float64(e.Hits), labels...)
	ch <- prometheus.MustNewConstMetric(missesDesc, prometheus.CounterValue, float64(e.Misses), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// Registry returns a registry holding the collector for root (and nothing
// else: no Go runtime metrics in a node_exporter textfile).
func Registry(root *cache.Root) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(root))
	return reg
}

// WriteTextfile writes the metrics for node_exporter's textfile collector,
// atomically (a temporary file renamed into place).
func WriteTextfile(root *cache.Root, path string) error {
	if err := prometheus.WriteToTextfile(path, Registry(root)); err != nil {
		return fmt.Errorf("write metrics to %s: %w", path, err)
	}
	return nil
}

// Serve serves /metrics on l until ctx ends.
func Serve(ctx context.Context, root *cache.Root, l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(Registry(root), promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

// WriteText writes the metrics in the Prometheus text format to w.
func WriteText(root *cache.Root, w io.Writer) error {
	families, err := Registry(root).Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	return nil
}
