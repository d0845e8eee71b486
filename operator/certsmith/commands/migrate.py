"""`certsmith migrate`: hand the Secrets cert-manager issued to the certsmith Certificates that
replace its own, as they are — valid certificates are kept, not re-issued (no outage, no ACME rate
limit spent); the operator renews them on the usual schedule."""

from __future__ import annotations

from kubernetes import client

from certsmith.api import CERTIFICATES, GROUP, VERSION, SpecError
from certsmith.api.cert_manager import CERT_MANAGER_CERTIFICATE_NAME
from certsmith.api.certificate import parse_certificate_spec
from certsmith.commands.common import ExitCode, body_of, listing, talking
from certsmith.commands.status import Scope
from certsmith.kube.port import HTTP_NOT_FOUND
from certsmith.tls_secret import CERTIFICATE_NAME, desired_metadata


def migrate(api: client.ApiClient, scope: Scope, dry_run: bool) -> int:
    """For each certsmith Certificate whose Secret cert-manager made for a Certificate of the same name,
    label and annotate that Secret as certsmith would have (nothing else in it changes)."""
    objects, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    where = "all namespaces" if scope.all_namespaces else f"namespace {scope.namespace}"
    with listing(f"list certificates.{GROUP} in {where}"):
        listed = (
            objects.list_cluster_custom_object(GROUP, VERSION, CERTIFICATES)
            if scope.all_namespaces
            else objects.list_namespaced_custom_object(GROUP, VERSION, scope.namespace, CERTIFICATES)
        )
    adopted = 0
    for body in body_of(listed)["items"]:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            spec = parse_certificate_spec(body.get("spec") or {})
        except SpecError as error:
            print(f"certificate {namespace}/{name}: skipped, {error}")
            continue
        with talking(f"get secrets {spec.secret_name} in namespace {namespace}"):
            try:
                secret = core.read_namespaced_secret(spec.secret_name, namespace)
            except client.exceptions.ApiException as error:
                if error.status != HTTP_NOT_FOUND:
                    raise
                print(
                    f"certificate {namespace}/{name}: no Secret {spec.secret_name}; the operator issues one"
                )
                continue
        annotations = (secret.metadata.annotations if secret.metadata else None) or {}
        if annotations.get(CERTIFICATE_NAME):
            print(f"certificate {namespace}/{name}: Secret {spec.secret_name} is certsmith's already")
            continue
        if annotations.get(CERT_MANAGER_CERTIFICATE_NAME) != name:
            print(
                f"certificate {namespace}/{name}: Secret {spec.secret_name} was not made by cert-manager for "
                f"Certificate {name}; left alone (certsmith status {name} says how to hand it over)"
            )
            continue
        labels, wanted = desired_metadata(spec, name, 1, None)
        if not dry_run:
            patch = {"metadata": {"labels": labels, "annotations": wanted}}
            with talking(f"patch secrets {spec.secret_name} in namespace {namespace}"):
                core.patch_namespaced_secret(spec.secret_name, namespace, patch)
        adopted += 1
        verb = "would adopt" if dry_run else "adopted"
        print(f"certificate {namespace}/{name}: {verb} Secret {spec.secret_name} as it is")
    print(f"{adopted} Secret(s) {'to adopt' if dry_run else 'adopted'}")
    return ExitCode.OK
