"""Rate-limit monitoring: the time series of observed budgets, alerts on them, retention, gauges.

``calc`` is pure math; ``recorder`` writes states and alerts to Postgres and publishes alert
changes to Kafka; ``retention`` drops old partitions; ``metrics`` holds the Prometheus gauges.
"""
