"""Pure X.509 over `cryptography`: keys, requests, signing, inspection and encodings.

Nothing here does I/O or knows about Kubernetes; everything takes the current time as an argument.
Error messages never contain key material.
"""


class PKIError(ValueError):
    """Input that is not a usable key or certificate; the message says what is wrong, without secrets."""
