"""All of certsmith's Kubernetes I/O."""
