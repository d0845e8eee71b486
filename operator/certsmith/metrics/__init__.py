"""Prometheus metrics: rendered at scrape time from what the operator already holds in memory."""
