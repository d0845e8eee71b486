"""certsmith: a Kubernetes operator that issues, stores and renews X.509 certificates."""

__version__ = "0.1.0"
