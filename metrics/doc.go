// Package metrics exposes dindstore's caches as Prometheus metrics: per
// cache its cap, allocated and used bytes, whether it is in use, when it was
// last used, and its warm-cache hits and misses; the host filesystem's free
// bytes and inodes; and the totals of prune and gc. The numbers are read
// fresh on every collection (the same stat and statfs calls as `ls`, no
// walk), so a scrape endpoint and a textfile for node_exporter show the
// same thing.
package metrics
