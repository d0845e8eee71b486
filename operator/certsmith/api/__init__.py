"""Typed views of certsmith's custom resources: parse a body into a spec, render status."""

GROUP = "certsmith.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class SpecError(ValueError):
    """A spec the operator cannot act on (the CRD normally rejects it first); names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"spec.{field}: {problem}")
        self.field = field


CERTIFICATES = "certificates"
ISSUERS = "issuers"
CLUSTER_ISSUERS = "clusterissuers"
CERTIFICATE_REQUESTS = "certificaterequests"
INGRESSES = "ingresses"
GATEWAYS = "gateways"
