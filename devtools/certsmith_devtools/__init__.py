"""certsmith's development tooling (the distribution certsmith-devtools): `certsmith dev`, a real local
control plane built from Go modules and cached (controlplane.py), the offline image and kind node
builders, and the Pebble, BIND and Prometheus harness the tests and benchmarks use.

Kept empty of imports: `certsmith` loads `command.py` to add `certsmith dev` to its parser, and that
must not load the control plane."""
