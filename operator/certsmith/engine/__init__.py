"""The I/O layer: every step that talks to a CA or a DNS server runs here, never in a reconcile.

Reconciles observe memory, decide once and return a plan; a plan's network step (`steps`) is
started by `Lanes`, one small executor per issuer, and its result comes back as an event that
queues the next reconcile of the object that asked for it.
"""
