package metrics

import "github.com/prometheus/client_golang/prometheus"

// snapCollector turns one snapshot of a command's counters, taken when
// Prometheus scrapes, into metrics: the counters stay plain atomics in the
// packages that do the work, and the values of one scrape belong together.
type snapCollector[T any] struct {
	snap    func() T
	metrics []snapMetric[T]
}

type snapMetric[T any] struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	get  func(T) float64
}

func (c *snapCollector[T]) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

func (c *snapCollector[T]) Collect(ch chan<- prometheus.Metric) {
	v := c.snap()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.get(v))
	}
}

func counter[T any](name, help string, get func(T) float64) snapMetric[T] {
	return snapMetric[T]{desc: desc(name, help), typ: prometheus.CounterValue, get: get}
}

func gauge[T any](name, help string, get func(T) float64) snapMetric[T] {
	return snapMetric[T]{desc: desc(name, help), typ: prometheus.GaugeValue, get: get}
}
