"""Reconcilers: the latest observed objects -> a plan -> one applier. Run in worker threads; the
event-loop side (`certsmith.runtime`) owns the store and merges what the workers wrote."""
