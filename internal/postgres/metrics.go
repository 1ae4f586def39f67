package postgres

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// PoolCollector exports the connection pool's statistics as
// lastmile_db_pool_* metrics, read from the pool at each scrape.
type PoolCollector struct {
	pool *pgxpool.Pool

	acquired, idle, total, max, acquires, emptyAcquires, waitSeconds, canceled *prometheus.Desc
}

// NewPoolCollector returns a collector for pool; register it once.
func NewPoolCollector(pool *pgxpool.Pool) *PoolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("lastmile_db_pool_"+name, help, nil, nil)
	}
	return &PoolCollector{
		pool:          pool,
		acquired:      d("acquired_conns", "Postgres connections in use."),
		idle:          d("idle_conns", "Postgres connections open and idle."),
		total:         d("total_conns", "Postgres connections open (in use, idle or being opened)."),
		max:           d("max_conns", "Largest number of Postgres connections the pool opens (--db-max-conns)."),
		acquires:      d("acquires_total", "Connections taken from the pool."),
		emptyAcquires: d("empty_acquires_total", "Connections taken that had to wait, for a new connection or a busy one."),
		waitSeconds:   d("acquire_wait_seconds_total", "Time spent waiting for a connection."),
		canceled:      d("canceled_acquires_total", "Waits for a connection that were given up (timeout or cancelled request)."),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.acquires, c.emptyAcquires, c.waitSeconds, c.canceled} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.acquired, float64(s.AcquiredConns()))
	gauge(c.idle, float64(s.IdleConns()))
	gauge(c.total, float64(s.TotalConns()))
	gauge(c.max, float64(s.MaxConns()))
	counter(c.acquires, float64(s.AcquireCount()))
	counter(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	counter(c.waitSeconds, s.AcquireDuration().Seconds())
	counter(c.canceled, float64(s.CanceledAcquireCount()))
}
