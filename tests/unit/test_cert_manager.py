"""Converting cert-manager's manifests: every field carried over, or named in a note with the reason;
cert-manager's defaults pinned; what would not work refused; malformed input a message, not a traceback."""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from certsmith.api.cert_manager import Converted, convert, convert_all, is_cert_manager
from certsmith.api.cert_manager_fields import Severity
from certsmith.api.certificate import parse_certificate_spec
from certsmith.api.certificate_request import parse_certificate_request_spec
from certsmith.api.issuer import parse_issuer_spec
from certsmith.commands.common import ExitCode
from certsmith.commands.convert import convert_files

CORPUS = Path(__file__).parents[1] / "fixtures" / "cert-manager"
OUTCOMES = {
    (True, True): "faithful",
    (True, False): "dropped",
    (False, False): "refused",
    (False, True): "skipped",
}
"""By (emitted, faithful), as hack/convert-report.py counts them."""

CERT_MANAGER_FIELDS = {
    "Certificate": """
        secretName secretTemplate.annotations secretTemplate.labels commonName literalSubject
        subject.organizations subject.countries subject.organizationalUnits subject.localities
        subject.provinces subject.streetAddresses subject.postalCodes subject.serialNumber
        duration renewBefore renewBeforePercentage renewal.policy renewal.windows
        dnsNames ipAddresses uris emailAddresses otherNames[].oid otherNames[].utf8Value
        keystores.jks.create keystores.jks.alias keystores.jks.passwordSecretRef keystores.jks.password
        keystores.pkcs12.create keystores.pkcs12.profile keystores.pkcs12.passwordSecretRef.name
        keystores.pkcs12.passwordSecretRef.key keystores.pkcs12.password
        issuerRef.name issuerRef.kind issuerRef.group isCA usages
        privateKey.algorithm privateKey.size privateKey.encoding privateKey.rotationPolicy
        signatureAlgorithm encodeUsagesInRequest revisionHistoryLimit additionalOutputFormats[].type
        nameConstraints.critical nameConstraints.permitted.dnsDomains nameConstraints.permitted.ipRanges
        nameConstraints.permitted.emailAddresses nameConstraints.permitted.uriDomains
        nameConstraints.excluded.dnsDomains
        organization uriSANs emailSANs keyAlgorithm keySize keyEncoding
    """,
    "CertificateRequest": """
        request csr duration isCA usages username uid groups extra
        issuerRef.name issuerRef.kind issuerRef.group
    """,
    "Issuer": """
        selfSigned selfSigned.crlDistributionPoints
        ca.secretName ca.crlDistributionPoints ca.ocspServers ca.issuingCertificateURLs
        vault.server vault.path vault.auth venafi.zone venafi.cloud
        acme.server acme.email acme.preferredChain acme.caBundle acme.skipTLSVerify
        acme.privateKeySecretRef.name acme.privateKeySecretRef.key
        acme.externalAccountBinding.keyID acme.externalAccountBinding.keySecretRef.name
        acme.externalAccountBinding.keySecretRef.key acme.externalAccountBinding.keyAlgorithm
        acme.disableAccountKeyGeneration acme.enableDurationFeature acme.profile
        acme.renewalInformationSource
        acme.solvers[].selector.dnsNames acme.solvers[].selector.dnsZones acme.solvers[].selector.matchLabels
        acme.solvers[].waitInsteadOfSelfCheck
        acme.solvers[].http01.ingress.ingressClassName acme.solvers[].http01.ingress.class
        acme.solvers[].http01.ingress.name acme.solvers[].http01.ingress.serviceType
        acme.solvers[].http01.ingress.podTemplate
        acme.solvers[].http01.ingress.ingressTemplate.metadata.annotations
        acme.solvers[].http01.ingress.ingressTemplate.metadata.labels
        acme.solvers[].http01.gatewayHTTPRoute.serviceType acme.solvers[].http01.gatewayHTTPRoute.labels
        acme.solvers[].http01.gatewayHTTPRoute.parentRefs
        acme.solvers[].dns01.cnameStrategy acme.solvers[].dns01.nameservers
        acme.solvers[].dns01.rfc2136.nameserver acme.solvers[].dns01.rfc2136.tsigKeyName
        acme.solvers[].dns01.rfc2136.tsigAlgorithm acme.solvers[].dns01.rfc2136.protocol
        acme.solvers[].dns01.rfc2136.tsigSecretSecretRef.name
        acme.solvers[].dns01.rfc2136.tsigSecretSecretRef.key
        acme.solvers[].dns01.route53.region acme.solvers[].dns01.route53.hostedZoneID
        acme.solvers[].dns01.route53.accessKeyID acme.solvers[].dns01.route53.role
        acme.solvers[].dns01.route53.accessKeyIDSecretRef.name
        acme.solvers[].dns01.route53.accessKeyIDSecretRef.key
        acme.solvers[].dns01.route53.secretAccessKeySecretRef.name
        acme.solvers[].dns01.route53.secretAccessKeySecretRef.key acme.solvers[].dns01.route53.auth
        acme.solvers[].dns01.cloudflare acme.solvers[].dns01.azureDNS
        acme.solvers[].dns01.cloudDNS acme.solvers[].dns01.acmeDNS acme.solvers[].dns01.akamai
        acme.solvers[].dns01.digitalocean acme.solvers[].dns01.webhook
    """,
}
"""cert-manager's spec fields (cert-manager.io/v1, and v1alpha2's renamed ones), down to where certsmith
has a counterpart; below a field certsmith cannot take at all, its presence is enough."""


def _corpus(name: str) -> list[dict[str, Any]]:
    documents = [document for document in yaml.safe_load_all((CORPUS / name).read_text()) if document]
    expanded: list[dict[str, Any]] = []
    for document in documents:
        expanded.extend(document["items"] if document["kind"] == "List" else [document])
    return expanded


def _all_documents() -> list[dict[str, Any]]:
    return [document for name in ("faithful.yaml", "documented.yaml") for document in _corpus(name)]


def _paths(value: object, prefix: str = "") -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            yield from _paths(item, path)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                yield f"{prefix}[]"
                yield from _paths(item, f"{prefix}[]")


def _works(kind: str, spec: Mapping[str, Any]) -> None:
    if kind == "Certificate":
        parse_certificate_spec(spec)
    elif kind == "CertificateRequest":
        parse_certificate_request_spec(spec)
    else:
        parse_issuer_spec(spec)


def test_the_corpus_holds_every_field_of_cert_managers_kinds() -> None:
    seen: dict[str, set[str]] = {}
    for document in _all_documents():
        kind = "Issuer" if document["kind"] == "ClusterIssuer" else document["kind"]
        seen.setdefault(kind, set()).update(_paths(document["spec"]))
    for kind, fields in CERT_MANAGER_FIELDS.items():
        assert set(fields.split()) - seen[kind] == set(), kind


def test_every_emitted_object_works_and_every_other_is_refused_with_a_reason() -> None:
    documents = _all_documents()
    for document, result in zip(documents, convert_all(documents), strict=True):
        name = document["metadata"]["name"]
        if result.manifest is None:
            assert result.notes[-1].severity is Severity.REFUSED or name == "example-com-1", name
            continue
        assert result.manifest["apiVersion"] == "certsmith.dev/v1alpha1"
        _works(result.manifest["kind"], result.manifest["spec"])
        acme = result.manifest["spec"].get("acme")
        assert acme is None or acme["solvers"], f"{name}: an ACME issuer without a solver was emitted"
        assert all(note.severity is not Severity.REFUSED for note in result.notes), name


def _outcomes(name: str) -> dict[str, str]:
    documents = _corpus(name)
    return {
        document["metadata"]["name"]: OUTCOMES[(result.manifest is not None, result.faithful)]
        for document, result in zip(documents, convert_all(documents), strict=True)
    }


def test_the_documented_examples_convert_or_say_why_not() -> None:
    outcomes = _outcomes("documented.yaml")
    refused = {name for name, outcome in outcomes.items() if outcome == "refused"}
    assert refused == {
        "gateway-http01",
        "route53-irsa",
        "cloudflare",
        "azuredns",
        "clouddns",
        "acme-dns",
        "akamai",
        "digitalocean",
        "webhook",
        "no-solvers",
        "vault",
        "venafi-cloud",
        "from-vault",
        "constrained-ca",
        "external-issuer",
    }
    assert {name for name, outcome in outcomes.items() if outcome == "skipped"} == {"example-com-1"}
    faithful = {name for name, outcome in outcomes.items() if outcome == "faithful"}
    assert faithful == {
        "rfc2136-lowercase",
        "zerossl",
        "selfsigned-cluster",
        "intermediate",
        "output-formats",
        "recorded-requester",
        "legacy-request",
        "legacy-rsa",
        "route53",
        "mixed",
        "route53-wildcard",
        "rfc2136-cname",
    }
    assert set(_outcomes("faithful.yaml").values()) == {"faithful"}


def _document(kind: str, spec: object, api_version: str = "cert-manager.io/v1") -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "x", "namespace": "apps"},
        "spec": spec,
    }


def _acme(*solvers: object, **fields: object) -> dict[str, Any]:
    return {
        "acme": {
            "server": "https://acme.example.com/dir",
            "privateKeySecretRef": {"name": "account"},
            "solvers": list(solvers),
            **fields,
        }
    }


def _notes(result: Converted) -> dict[str, tuple[Severity, str]]:
    return {note.path: (note.severity, note.message) for note in result.notes}


MALFORMED = {
    "issuer-ref-list": ("spec.issuerRef", "expected a mapping (name, kind, group), got a list"),
    "private-key-string": ("spec.privateKey", "got the string 'RSA'"),
    "dns-names-string": ("spec.dnsNames", "expected a list of strings, got the string 'c.example.com'"),
    "is-ca-string": ("spec.isCA", "expected true or false, got the string 'yes'"),
    "no-issuer-ref": ("spec.issuerRef", "is required"),
    "no-names": ("spec.commonName", "set commonName, dnsNames"),
    "bad-usage": ("spec.usages", "tls web server: not a key usage"),
    "bad-duration": ("spec.duration", "'90d' is not a Go duration"),
    "spec-list": ("spec", "expected a mapping, got a list"),
    None: ("metadata.name", "is required"),
    "two-kinds": ("spec", "set exactly one of selfSigned, ca, acme, vault, venafi (given: selfSigned, ca)"),
    "solvers-mapping": ("spec.acme.solvers", "expected a list, each item a solver"),
    "http-acme": ("spec.acme.server", "must be an https:// URL"),
    "labels-list": ("spec.acme.solvers[0].selector.matchLabels", "expected a mapping of strings to strings"),
    "eab-without-key": ("spec.acme.externalAccountBinding", "needs keyID and keySecretRef"),
    "request-not-base64": ("spec.request", "is not base64"),
}


def test_malformed_input_is_refused_with_the_field_named() -> None:
    documents = _corpus("malformed.yaml")
    assert len(documents) == len(MALFORMED)
    for document in documents:
        result = convert(document)
        path, message = MALFORMED[document["metadata"].get("name")]
        assert result.manifest is None
        refusal = result.notes[-1]
        assert (refusal.severity, refusal.path) == (Severity.REFUSED, path), refusal
        assert message in refusal.message, refusal


def test_a_certificate_converts_field_by_field_and_keeps_cert_managers_usages() -> None:
    spec = {
        "secretName": "web-tls",
        "commonName": "web",
        "dnsNames": ["web.example.com"],
        "duration": "720h",
        "subject": {"organizations": ["Example"]},
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "issuerRef": {"name": "ca", "kind": "Issuer", "group": "cert-manager.io"},
        "secretTemplate": {"labels": {"team": "web"}},
    }
    result = convert(_document("Certificate", spec))
    assert result.notes == []
    assert result.manifest is not None
    converted = result.manifest["spec"]
    assert converted["issuerRef"] == {"name": "ca", "kind": "Issuer"}
    assert converted["usages"] == ["digital signature", "key encipherment"]
    parsed = parse_certificate_spec(converted)
    assert parsed.request.dns_names == ("web.example.com",)
    assert parsed.request.subject.organizations == ("Example",)


def _mutations(value: object, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every key and list item below `value`, as a path."""
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in children:
        yield (*path, key)
        yield from _mutations(child, (*path, key))


def _mutated(document: dict[str, Any], path: tuple[str | int, ...], replacement: object) -> dict[str, Any]:
    mutated = copy.deepcopy(document)
    parent: Any = mutated
    for key in path[:-1]:
        parent = parent[key]
    if replacement is None:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return mutated


def test_no_field_removed_or_misshapen_ends_in_a_traceback_or_a_broken_object() -> None:
    for document in _all_documents():
        for path in _mutations(document):
            replacements: tuple[object, ...] = (None, "x", [1], {}, 7)
            for replacement in replacements:
                result = convert_all([_mutated(document, path, replacement)])[0]
                if result.manifest is not None:
                    _works(result.manifest["kind"], result.manifest["spec"])


STRING_MAPS = frozenset({"matchLabels", "annotations", "labels", "extra"})
"""Maps of the user's own keys (labels, annotations): any key there is data, not a field."""


def _note_path(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path).lstrip(".")


def test_a_field_certsmith_does_not_know_is_named_wherever_it_is() -> None:
    for document in _all_documents():
        mappings = [
            path
            for path in _mutations(document["spec"], ("spec",))
            if isinstance(_at(document, path), dict) and path[-1] not in STRING_MAPS
        ]
        for path in [("spec",), *mappings]:
            mutated = copy.deepcopy(document)
            _at(mutated, path)["futureField"] = "x"
            unknown = f"{_note_path(path)}.futureField"
            result = convert_all([mutated])[0]
            if result.manifest is not None:
                said = {note.path: note.severity for note in result.notes if unknown.startswith(note.path)}
                assert said, f"{document['metadata']['name']}: {unknown} dropped silently"
                assert said.get(unknown, Severity.DROPPED) is Severity.DROPPED


def _at(document: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    value: Any = document
    for key in path:
        value = value[key]
    return value


def test_a_misplaced_secret_is_never_quoted_back() -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
    spec = {"secretName": "s", "commonName": "c", "privateKey": pem, "issuerRef": {"name": "ca"}}
    tsig = {"nameserver": "192.0.2.1", "tsigSecretSecretRef": "c2VjcmV0"}
    for result in (
        convert(_document("Certificate", spec)),
        convert(_document("Issuer", _acme({"dns01": {"rfc2136": tsig}}))),
    ):
        message = str(result.notes[-1])
        assert "got a string" in message
        assert "BEGIN" not in message
        assert "c2VjcmV0" not in message


def test_v1alpha2_fields_map_to_private_key_and_subject() -> None:
    spec = {
        "secretName": "s",
        "commonName": "legacy",
        "organization": ["Example"],
        "uriSANs": ["spiffe://example.com/a"],
        "emailSANs": ["a@example.com"],
        "keyAlgorithm": "ecdsa",
        "keySize": 384,
        "keyEncoding": "pkcs8",
        "issuerRef": {"name": "ca"},
    }
    result = convert(_document("Certificate", spec, "cert-manager.io/v1alpha2"))
    assert result.notes == []
    assert result.manifest is not None
    converted = result.manifest["spec"]
    assert converted["privateKey"] == {"algorithm": "ECDSA", "encoding": "PKCS8", "size": 384}
    assert converted["subject"] == {"organizations": ["Example"]}
    assert converted["uris"] == ["spiffe://example.com/a"]
    assert converted["emailAddresses"] == ["a@example.com"]


def test_cert_managers_defaults_are_pinned_where_certsmiths_differ() -> None:
    rfc2136 = {
        "nameserver": "192.0.2.53",
        "tsigKeyName": "k",
        "tsigSecretSecretRef": {"name": "t", "key": "k"},
    }
    issuer = convert(_document("Issuer", _acme({"dns01": {"rfc2136": rfc2136}})))
    assert issuer.manifest is not None
    assert issuer.manifest["spec"]["acme"]["solvers"][0]["dns01"]["rfc2136"]["tsigAlgorithm"] == "HMACMD5"
    assert issuer.faithful
    ed25519 = convert(
        _document(
            "Certificate",
            {
                "secretName": "s",
                "commonName": "c",
                "privateKey": {"algorithm": "Ed25519"},
                "issuerRef": {"name": "ca"},
            },
        )
    )
    assert ed25519.manifest is not None
    assert ed25519.manifest["spec"]["privateKey"] == {"algorithm": "Ed25519", "encoding": "PKCS8"}
    pkcs12 = {"create": True, "passwordSecretRef": {"name": "p", "key": "password"}}
    keystore = convert(
        _document(
            "Certificate",
            {
                "secretName": "s",
                "commonName": "c",
                "keystores": {"pkcs12": pkcs12},
                "issuerRef": {"name": "ca"},
            },
        )
    )
    assert keystore.manifest is not None
    assert keystore.manifest["spec"]["keystores"]["pkcs12"]["profile"] == "Modern2023"
    severity, message = _notes(keystore)["spec.keystores.pkcs12.profile"]
    assert severity is Severity.DROPPED
    assert "LegacyRC2 (cert-manager's default when no profile is named)" in message
    assert not keystore.faithful


def test_an_issuer_left_without_a_solver_is_refused_and_the_migration_path_said() -> None:
    result = convert(_document("ClusterIssuer", _acme({"dns01": {"cloudflare": {"email": "a@example.com"}}})))
    assert result.manifest is None
    notes = _notes(result)
    severity, message = notes["spec.acme.solvers[0].dns01.cloudflare"]
    assert severity is Severity.DROPPED
    assert "certsmith has no Cloudflare DNS-01 provider" in message
    assert "CNAME delegation" in message
    assert "certsmith.dns01_providers" in message
    assert "dns-persist-01" in message
    assert notes["spec.acme.solvers"][0] is Severity.REFUSED
    kept = convert(_document("ClusterIssuer", _acme({"dns01": {"akamai": {}}}, {"http01": {"ingress": {}}})))
    assert kept.manifest is not None
    assert kept.manifest["spec"]["acme"]["solvers"] == [{"http01": {"ingress": {}}}]
    assert not kept.faithful


def test_route53_converts_with_its_credentials() -> None:
    route53 = {
        "region": "eu-west-1",
        "hostedZoneID": "Z123",
        "accessKeyIDSecretRef": {"name": "aws", "key": "id"},
        "secretAccessKeySecretRef": {"name": "aws", "key": "secret"},
        "role": "arn:aws:iam::1:role/dns",
    }
    result = convert(_document("Issuer", _acme({"dns01": {"route53": route53}})))
    assert result.manifest is not None
    assert result.manifest["spec"]["acme"]["solvers"] == [{"dns01": {"route53": route53}}]
    assert result.faithful


def test_route53_with_ambient_credentials_converts_for_a_cluster_issuer_only() -> None:
    ambient = _acme({"dns01": {"route53": {"region": "us-east-1"}}})
    cluster = convert(_document("ClusterIssuer", ambient))
    assert cluster.manifest is not None
    assert cluster.manifest["spec"]["acme"]["solvers"] == [{"dns01": {"route53": {"region": "us-east-1"}}}]
    namespaced = convert(_document("Issuer", ambient))
    assert namespaced.manifest is None
    severity, message = _notes(namespaced)["spec.acme.solvers[0].dns01.route53"]
    assert severity is Severity.DROPPED
    assert "ClusterIssuer only" in message
    web_identity = {"route53": {"auth": {"kubernetes": {"serviceAccountRef": {"name": "sa"}}}}}
    refused = convert(_document("ClusterIssuer", _acme({"dns01": web_identity})))
    assert refused.manifest is None
    assert _notes(refused)["spec.acme.solvers[0].dns01.route53.auth"][0] is Severity.DROPPED


def test_what_certsmith_does_not_have_is_named_at_any_depth() -> None:
    solver = {
        "http01": {
            "ingress": {
                "class": "nginx",
                "tolerance": 3,
                "ingressTemplate": {"metadata": {"labels": {"a": "b"}}},
            }
        },
        "waitInsteadOfSelfCheck": "10s",
    }
    result = convert(_document("Issuer", _acme(solver, futureField=True)))
    assert result.manifest is not None
    notes = _notes(result)
    assert notes["spec.acme.futureField"][0] is Severity.DROPPED
    assert notes["spec.acme.solvers[0].http01.ingress.tolerance"][0] is Severity.DROPPED
    assert notes["spec.acme.solvers[0].http01.ingress.ingressTemplate.metadata.labels"][0] is Severity.DROPPED
    assert notes["spec.acme.solvers[0].waitInsteadOfSelfCheck"][0] is Severity.DROPPED
    rfc2136 = {"nameserver": "192.0.2.1", "tsigAlgorithm": "HMACSHA256", "protocol": "TCP"}
    cname = convert(_document("Issuer", _acme({"dns01": {"cnameStrategy": "Follow", "rfc2136": rfc2136}})))
    assert cname.manifest is not None
    converted = {"nameserver": "192.0.2.1", "tsigAlgorithm": "HMACSHA256"}
    assert cname.manifest["spec"]["acme"]["solvers"] == [
        {"dns01": {"cnameStrategy": "Follow", "rfc2136": converted}}
    ]
    assert cname.faithful
    odd = convert(_document("Issuer", _acme({"dns01": {"cnameStrategy": "Sometimes", "rfc2136": rfc2136}})))
    assert _notes(odd)["spec.acme.solvers[0].dns01.cnameStrategy"][0] is Severity.DROPPED


def test_certificate_requests_convert() -> None:
    request = {
        "csr": "LS0tLS1CRUdJTg==",
        "isCA": True,
        "username": "someone",
        "issuerRef": {"name": "root", "kind": "ClusterIssuer", "group": "cert-manager.io"},
    }
    result = convert(_document("CertificateRequest", request, "cert-manager.io/v1alpha2"))
    assert result.manifest is not None
    assert result.manifest["kind"] == "CertificateRequest"
    assert result.manifest["spec"] == {
        "request": "LS0tLS1CRUdJTg==",
        "isCA": True,
        "usages": ["digital signature", "key encipherment"],
        "issuerRef": {"name": "root", "kind": "ClusterIssuer"},
    }
    notes = _notes(result)
    assert "issuancePolicy" in notes["spec.isCA"][1]
    assert result.faithful


def test_a_request_cert_manager_made_for_its_certificate_is_left_out() -> None:
    request = _document("CertificateRequest", {"request": "LS0t", "issuerRef": {"name": "ca"}})
    owned = {
        **request,
        "metadata": {"name": "web-1", "ownerReferences": [{"kind": "Certificate", "name": "web"}]},
    }
    result = convert(owned)
    assert result.manifest is None
    assert result.faithful
    assert "its Certificate web" in result.notes[0].message
    assert convert(request).manifest is not None


def test_a_ca_cluster_issuer_says_that_ca_certificates_need_an_opt_in_and_grants_none() -> None:
    result = convert(_document("ClusterIssuer", {"ca": {"secretName": "root"}}))
    assert result.manifest is not None
    assert result.manifest["spec"] == {"ca": {"secretName": "root"}}
    severity, message = _notes(result)["spec"]
    assert severity is Severity.NOTE
    assert "spec.issuancePolicy" in message
    assert "CA certificates from ClusterIssuers (issuancePolicy)" in message
    assert result.faithful


def test_a_certificate_of_a_refused_issuer_is_refused_too() -> None:
    vault = _document("Issuer", {"vault": {"server": "https://vault"}})
    certificate = _document("Certificate", {"secretName": "s", "commonName": "c", "issuerRef": {"name": "x"}})
    elsewhere = {**certificate, "metadata": {"name": "y", "namespace": "other"}}
    results = convert_all([vault, certificate, elsewhere])
    assert results[1].manifest is None
    assert "Issuer x is refused" in results[1].notes[-1].message
    assert results[2].manifest is not None


@pytest.mark.parametrize(
    ("name", "code"), [("faithful.yaml", ExitCode.OK), ("documented.yaml", ExitCode.INCOMPLETE)]
)
def test_the_command_says_each_note_and_exits_5_when_something_is_not_carried_over(
    name: str, code: ExitCode
) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert convert_files([CORPUS / name], out, err) == code
    emitted = [document for document in yaml.safe_load_all(out.getvalue()) if document]
    assert all(document["apiVersion"] == "certsmith.dev/v1alpha1" for document in emitted)
    assert "List" not in {document["kind"] for document in emitted}
    if code == ExitCode.INCOMPLETE:
        assert (
            f"certsmith convert: {CORPUS / name}, document 20 (Issuer vault): refused: spec.vault:"
            in err.getvalue()
        )


def test_cert_managers_api_before_0_11_is_refused_not_passed_through() -> None:
    issuer = {**_document("Issuer", {"selfSigned": {}}), "apiVersion": "certmanager.k8s.io/v1alpha1"}
    assert is_cert_manager(issuer)
    result = convert(issuer)
    assert result.manifest is None
    assert "rewrite it for cert-manager.io/v1" in str(result.notes[0])


def test_other_documents_pass_through() -> None:
    assert not is_cert_manager({"apiVersion": "v1", "kind": "Secret"})
    assert not is_cert_manager({"apiVersion": "acme.cert-manager.io/v1", "kind": "Order"})


def test_an_acme_profile_is_carried_over_and_parsed() -> None:
    issuer = convert(_document("ClusterIssuer", _acme({"http01": {"ingress": {}}}, profile="shortlived")))
    assert issuer.manifest is not None
    assert issuer.faithful
    assert issuer.manifest["spec"]["acme"]["profile"] == "shortlived"
    parsed = parse_issuer_spec(issuer.manifest["spec"])
    assert getattr(parsed, "profile", None) == "shortlived"
