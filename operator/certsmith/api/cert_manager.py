"""cert-manager's objects in certsmith's terms: its Certificate, CertificateRequest, Issuer and
ClusterIssuer manifests (cert-manager.io/v1, and the older versions' field names) converted field by
field, faithful or loud: every field is carried over, or named in a note with the reason; where
certsmith's default differs, cert-manager's is written out; an object that would not work as
certsmith's is refused. Also the layout of the Secrets cert-manager issued (for adopting them without
re-issuing). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from certsmith.api import API_VERSION, GROUP, SpecError
from certsmith.api.acme import ACMEIssuerSpec, parse_acme_spec, solver_for
from certsmith.api.cert_manager_fields import Fields, Note, Notes, Refused, Severity, put
from certsmith.api.cert_manager_issuers import ISSUANCE_POLICY, convert_issuer, secret_key_ref
from certsmith.api.certificate import parse_certificate_spec
from certsmith.api.certificate_request import parse_certificate_request_spec
from certsmith.api.issuer import parse_issuer_spec
from certsmith.pki.encodings import PKCS12Profile
from certsmith.pki.usages import EXTENDED_KEY_USAGES, KEY_USAGE_BITS, effective_usages

CERT_MANAGER_GROUP = "cert-manager.io"
LEGACY_GROUP = "certmanager.k8s.io"
"""cert-manager's API group before 0.11, of another shape: refused."""
CERT_MANAGER_CERTIFICATE_NAME = "cert-manager.io/certificate-name"
"""The annotation cert-manager puts on every Secret it issues into."""

KINDS = frozenset({"Certificate", "CertificateRequest", "Issuer", "ClusterIssuer"})

CERT_MANAGER_DEFAULT_USAGES = ("digital signature", "key encipherment")
"""What cert-manager puts in a certificate whose spec names no usages, whatever the key type; certsmith
leaves key encipherment out for ECDSA and Ed25519, so a converted spec names them, or every migrated
ECDSA certificate would differ from its spec and be re-issued."""

CERT_MANAGER_PKCS12_PROFILE = "LegacyRC2"
"""The PKCS#12 profile cert-manager writes when none is named."""

_LEGACY_KEY_FIELDS = {
    "keyAlgorithm": ("algorithm", {"rsa": "RSA", "ecdsa": "ECDSA", "ed25519": "Ed25519"}),
    "keyEncoding": ("encoding", {"pkcs1": "PKCS1", "pkcs8": "PKCS8"}),
}
"""v1alpha2 and v1alpha3 spelled privateKey.algorithm and .encoding this way (lower case)."""

_LEGACY_NAME_FIELDS = {"uriSANs": "uris", "emailSANs": "emailAddresses"}
_SUBJECT_FIELDS = (
    "organizations",
    "countries",
    "organizationalUnits",
    "localities",
    "provinces",
    "streetAddresses",
    "postalCodes",
)
_OUTPUT_FORMATS = ("DER", "CombinedPEM")
_KUBECTL_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
"""What kubectl recorded of the cert-manager object: wrong for the converted one."""


@dataclass
class Converted:
    """One document: the certsmith manifest (None when refused or left out), and the notes on it."""

    manifest: dict[str, Any] | None
    notes: list[Note] = field(default_factory=list)

    @property
    def faithful(self) -> bool:
        """Nothing of cert-manager's dropped or refused (notes to know only; a request cert-manager made
        for a Certificate is left out, faithfully)."""
        return all(note.severity is Severity.NOTE for note in self.notes)


def is_cert_manager(document: Mapping[str, Any]) -> bool:
    group = str(document.get("apiVersion", "")).partition("/")[0]
    return group in (CERT_MANAGER_GROUP, LEGACY_GROUP) and document.get("kind") in KINDS


def convert(document: Mapping[str, Any]) -> Converted:
    """A cert-manager object (`is_cert_manager`) as certsmith's, with a note for everything that is not
    carried over as it was; refused, with the field and the reason, if it would not work."""
    kind = str(document.get("kind"))
    notes = Notes()
    if str(document.get("apiVersion")).startswith(f"{LEGACY_GROUP}/"):
        problem = f"{document.get('apiVersion')}: cert-manager's API before 0.11, of another shape"
        return Converted(
            None, [Note(Severity.REFUSED, "apiVersion", f"{problem}; rewrite it for cert-manager.io/v1")]
        )
    made_for = _made_for_certificate(document) if kind == "CertificateRequest" else None
    if made_for is not None:
        notes.note(
            "metadata",
            f"cert-manager made this request for its Certificate {made_for}; the converted Certificate is "
            "issued by certsmith without one: not emitted",
        )
        return Converted(None, notes.items)
    try:
        metadata = _metadata(Fields(document.get("metadata") or {}, "metadata"))
        raw_spec = document.get("spec")
        spec = Fields({} if raw_spec is None else raw_spec, "spec")
        if kind == "Certificate":
            converted = _certificate(spec, notes)
        elif kind == "CertificateRequest":
            converted = _certificate_request(spec, notes)
        else:
            converted = convert_issuer(spec, notes, cluster=kind == "ClusterIssuer")
        _check(kind, converted)
    except Refused as refusal:
        return Converted(None, [*notes.items, Note(Severity.REFUSED, refusal.path, refusal.message)])
    manifest = {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": converted}
    return Converted(manifest, notes.items)


def convert_all(documents: Sequence[Mapping[str, Any]]) -> list[Converted]:
    """Each cert-manager object converted. A Certificate or CertificateRequest whose issuer is among
    `documents` and refused is refused too, and so is a Certificate with a name that no solver left in
    its converted ACME issuer can prove: neither could ever be issued."""
    results = [convert(document) for document in documents]
    refused = {
        _issuer_key(str(document.get("kind")), _namespace(document), _name(document))
        for document, result in zip(documents, results, strict=True)
        if result.manifest is None and document.get("kind") in ("Issuer", "ClusterIssuer")
    }
    acme: dict[tuple[str, object, object], ACMEIssuerSpec] = {}
    for result in results:
        manifest = result.manifest
        if manifest is not None and "acme" in manifest["spec"]:
            key = _issuer_key(
                manifest["kind"], manifest["metadata"].get("namespace"), manifest["metadata"]["name"]
            )
            acme[key] = parse_acme_spec(manifest["spec"]["acme"])
    for result in results:
        manifest = result.manifest
        if manifest is None or manifest["kind"] not in ("Certificate", "CertificateRequest"):
            continue
        reference = manifest["spec"]["issuerRef"]
        kind = str(reference.get("kind") or "Issuer")
        issuer = _issuer_key(kind, manifest["metadata"].get("namespace"), reference.get("name"))
        if issuer in refused:
            problem = f"{kind} {reference.get('name')} is refused (see its notes): this could never be issued"
            result.notes.append(Note(Severity.REFUSED, "spec.issuerRef", problem))
            result.manifest = None
        elif issuer in acme and manifest["kind"] == "Certificate":
            labels = manifest["metadata"].get("labels") or {}
            unsolved = [
                name
                for name in manifest["spec"].get("dnsNames") or ()
                if solver_for(acme[issuer].solvers, name, labels) is None
            ]
            if unsolved:
                problem = (
                    f"no solver left in {kind} {reference.get('name')} (see its notes) can prove "
                    f"{', '.join(unsolved)}: this could never be issued"
                )
                result.notes.append(Note(Severity.REFUSED, "spec.dnsNames", problem))
                result.manifest = None
    return results


def _issuer_key(kind: str, namespace: object, name: object) -> tuple[str, object, object]:
    return (kind, None if kind == "ClusterIssuer" else namespace, name)


def _namespace(document: Mapping[str, Any]) -> str | None:
    return _metadata_text(document, "namespace")


def _name(document: Mapping[str, Any]) -> str | None:
    return _metadata_text(document, "name")


def _metadata_text(document: Mapping[str, Any], key: str) -> str | None:
    metadata = document.get("metadata")
    value = metadata.get(key) if isinstance(metadata, Mapping) else None
    return value if isinstance(value, str) else None


def _made_for_certificate(document: Mapping[str, Any]) -> str | None:
    """The Certificate a CertificateRequest was made for by cert-manager (its annotation, or its owner)."""
    metadata = document.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    annotations = metadata.get("annotations")
    if isinstance(annotations, Mapping) and annotations.get(CERT_MANAGER_CERTIFICATE_NAME):
        return str(annotations[CERT_MANAGER_CERTIFICATE_NAME])
    owners = metadata.get("ownerReferences")
    for owner in owners if isinstance(owners, list) else ():
        if isinstance(owner, Mapping) and owner.get("kind") == "Certificate":
            return str(owner.get("name"))
    return None


def _metadata(metadata: Fields) -> dict[str, Any]:
    """Name, namespace, labels and annotations; the rest of metadata is the API server's."""
    converted: dict[str, Any] = {}
    name = metadata.text("name")
    if not name:
        raise Refused("metadata.name", "is required")
    converted["name"] = name
    put(converted, "namespace", metadata.text("namespace"))
    put(converted, "labels", metadata.labels("labels"))
    annotations = metadata.labels("annotations")
    if annotations is not None:
        converted["annotations"] = {
            key: value for key, value in annotations.items() if key not in _KUBECTL_ANNOTATIONS
        }
    return converted


def _check(kind: str, spec: dict[str, Any]) -> None:
    """Refuse what certsmith's operator could not act on, as it would (with the field and the problem)."""
    try:
        if kind == "Certificate":
            parse_certificate_spec(spec)
        elif kind == "CertificateRequest":
            parse_certificate_request_spec(spec)
        else:
            parse_issuer_spec(spec)
    except SpecError as error:
        path = f"spec.{error.field}"
        raise Refused(path, str(error).removeprefix(f"{path}: ")) from None
    canonical = effective_usages(spec.get("usages") or (), is_ca=False, rsa=True)
    unknown = sorted(canonical - set(KEY_USAGE_BITS) - set(EXTENDED_KEY_USAGES))
    if unknown:
        raise Refused("spec.usages", f"{', '.join(unknown)}: not a key usage cert-manager or certsmith knows")


def _certificate(spec: Fields, notes: Notes) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    for name in ("secretName", "commonName", "duration", "renewBefore"):
        put(converted, name, spec.text(name))
    for name in ("dnsNames", "ipAddresses", "uris", "emailAddresses"):
        put(converted, name, spec.texts(name))
    for legacy, name in _LEGACY_NAME_FIELDS.items():
        names = spec.texts(legacy)
        if names:
            converted[name] = [*converted.get(name, ()), *names]
    put(converted, "renewBeforePercentage", spec.number("renewBeforePercentage"))
    put(converted, "isCA", spec.flag("isCA"))
    converted["usages"] = spec.texts("usages") or list(CERT_MANAGER_DEFAULT_USAGES)
    put(converted, "subject", _subject(spec, notes))
    put(converted, "privateKey", _private_key(spec, notes))
    converted["issuerRef"] = _issuer_ref(spec, notes)
    put(converted, "secretTemplate", _secret_template(spec, notes))
    put(converted, "additionalOutputFormats", _output_formats(spec, notes))
    keystores = spec.fields("keystores", "a mapping (pkcs12, jks)")
    if keystores is not None:
        put(converted, "keystores", _keystores(keystores, notes))
    _certificate_differences(spec, notes)
    notes.leftovers(spec)
    if converted.get("isCA") and converted["issuerRef"].get("kind") == "ClusterIssuer":
        notes.note(spec.at("isCA"), ISSUANCE_POLICY)
    return converted


def _subject(spec: Fields, notes: Notes) -> dict[str, Any] | None:
    converted: dict[str, Any] = {}
    subject = spec.fields("subject", f"a mapping ({', '.join(_SUBJECT_FIELDS)}, serialNumber)")
    if subject is not None:
        for name in _SUBJECT_FIELDS:
            put(converted, name, subject.texts(name))
        put(converted, "serialNumber", subject.text("serialNumber"))
        notes.leftovers(subject)
    organizations = spec.texts("organization")
    if organizations:
        converted["organizations"] = [*converted.get("organizations", ()), *organizations]
    return converted or None


def _private_key(spec: Fields, notes: Notes) -> dict[str, Any] | None:
    converted: dict[str, Any] = {}
    key = spec.fields("privateKey", "a mapping (algorithm, size, encoding, rotationPolicy)")
    if key is not None:
        for name in ("algorithm", "encoding", "rotationPolicy"):
            put(converted, name, key.text(name))
        put(converted, "size", key.number("size"))
        notes.leftovers(key)
    for legacy, (name, spelled) in _LEGACY_KEY_FIELDS.items():
        value = spec.text(legacy)
        if value is not None:
            converted.setdefault(name, spelled.get(value.lower(), value))
    size = spec.number("keySize")
    if size is not None:
        converted.setdefault("size", size)
    if converted.get("algorithm") == "Ed25519" and converted.get("encoding", "PKCS1") == "PKCS1":
        if "encoding" in converted:
            notes.note(
                spec.at("privateKey.encoding"),
                "cert-manager stores Ed25519 keys as PKCS#8 whatever the encoding says; certsmith needs it "
                "said: PKCS8",
            )
        converted["encoding"] = "PKCS8"
    return converted or None


def _issuer_ref(spec: Fields, notes: Notes) -> dict[str, Any]:
    reference = spec.fields("issuerRef", "a mapping (name, kind, group)")
    if reference is None:
        raise Refused(spec.at("issuerRef"), "is required: name the Issuer or ClusterIssuer that signs")
    converted: dict[str, Any] = {}
    put(converted, "name", reference.text("name"))
    put(converted, "kind", reference.text("kind"))
    group = reference.text("group")
    if group not in (None, "", CERT_MANAGER_GROUP, GROUP):
        raise Refused(
            reference.at("group"),
            f"{group} is an external issuer, signed by its own controller, which certsmith cannot use: name "
            "an Issuer or ClusterIssuer of cert-manager.io (converted to certsmith's) and convert again",
        )
    notes.leftovers(reference)
    return converted


def _secret_template(spec: Fields, notes: Notes) -> dict[str, Any] | None:
    template = spec.fields("secretTemplate", "a mapping (annotations, labels)")
    if template is None:
        return None
    converted: dict[str, Any] = {}
    put(converted, "annotations", template.labels("annotations"))
    put(converted, "labels", template.labels("labels"))
    notes.leftovers(template)
    return converted


def _output_formats(spec: Fields, notes: Notes) -> list[dict[str, Any]] | None:
    converted: list[dict[str, Any]] = []
    for item in spec.items("additionalOutputFormats", "a mapping (type)"):
        kind = item.text("type")
        if kind in _OUTPUT_FORMATS:
            converted.append({"type": kind})
        else:
            notes.drop(
                item.at("type"), f"certsmith writes {' and '.join(_OUTPUT_FORMATS)}, not {kind}; dropped"
            )
        notes.leftovers(item)
    return converted or None


def _keystores(keystores: Fields, notes: Notes) -> dict[str, Any] | None:
    jks = keystores.fields("jks", "a mapping (create, passwordSecretRef, alias, password)")
    if jks is not None and jks.flag("create"):
        notes.drop(
            keystores.at("jks"),
            "certsmith writes no JKS keystore (keystore.jks, truststore.jks); Java reads PKCS#12: use "
            "keystores.pkcs12 and keystore.p12",
        )
    elif jks is not None:
        for name in ("alias", "passwordSecretRef", "password"):
            jks.take(name)
        notes.leftovers(jks)
    pkcs12 = keystores.fields("pkcs12", "a mapping (create, passwordSecretRef, password, profile)")
    converted = None if pkcs12 is None else _pkcs12(pkcs12, notes)
    notes.leftovers(keystores)
    return None if converted is None else {"pkcs12": converted}


def _pkcs12(pkcs12: Fields, notes: Notes) -> dict[str, Any] | None:
    create = pkcs12.flag("create")
    reference = pkcs12.fields("passwordSecretRef", "a mapping (name, key)")
    password_given = pkcs12.take("password") is not None
    profile = pkcs12.text("profile")
    notes.leftovers(pkcs12)
    if not create:
        return None
    if reference is None:
        notes.drop(
            pkcs12.at("password") if password_given else pkcs12.path,
            "certsmith reads the keystore's password from a Secret only: put it in one and set "
            "passwordSecretRef; no keystore.p12 is written until then",
        )
        return None
    chosen = profile or CERT_MANAGER_PKCS12_PROFILE
    if chosen not in {known.value for known in PKCS12Profile}:
        default = " (cert-manager's default when no profile is named)" if profile is None else ""
        notes.drop(
            pkcs12.at("profile"),
            f"keystore.p12 was written as {chosen}{default}, which certsmith cannot write; it is written as "
            f"{PKCS12Profile.MODERN_2023} (AES-256, PBKDF2-SHA256): if a reader needs a legacy format "
            f"(Java before 8u301, OpenSSL 1.1), name {PKCS12Profile.LEGACY_DES}",
        )
        chosen = PKCS12Profile.MODERN_2023
    return {"create": True, "passwordSecretRef": secret_key_ref(reference, notes), "profile": str(chosen)}


def _certificate_differences(spec: Fields, notes: Notes) -> None:
    """cert-manager's Certificate fields that certsmith has no counterpart for, each said."""
    if spec.text("literalSubject") is not None:
        notes.drop(
            spec.at("literalSubject"),
            "certsmith builds the subject from commonName and subject.*; write the literal subject as those",
        )
    other_names = spec.items("otherNames", "a mapping (oid, utf8Value)")
    if other_names:
        notes.drop(
            spec.at("otherNames"),
            f"certsmith cannot put otherName SANs (such as a UPN) in a certificate; {len(other_names)} not "
            "carried over",
        )
    if spec.take("renewal") is not None:
        notes.drop(
            spec.at("renewal"),
            "certsmith has no renewal windows: it renews at renewBefore (or 2/3 of the lifetime) whatever "
            "the time of day",
        )
    algorithm = spec.text("signatureAlgorithm")
    if algorithm is not None:
        notes.drop(
            spec.at("signatureAlgorithm"),
            f"certsmith signs with the hash that suits the issuer's key, not a chosen one ({algorithm})",
        )
    if spec.flag("encodeUsagesInRequest") is not None:
        notes.note(
            spec.at("encodeUsagesInRequest"),
            "certsmith makes the request itself and signs the usages of spec.usages; nothing to carry over",
        )
    if spec.number("revisionHistoryLimit") is not None:
        notes.note(
            spec.at("revisionHistoryLimit"),
            "certsmith makes no CertificateRequest per issuance of a Certificate: no history to limit",
        )
    if spec.take("nameConstraints") is not None:
        raise Refused(
            spec.at("nameConstraints"),
            "certsmith cannot write name constraints, and without them this CA would sign for any name: keep "
            "it on cert-manager, or remove nameConstraints knowingly and convert again",
        )


def _certificate_request(spec: Fields, notes: Notes) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    put(converted, "request", spec.text("request") or spec.text("csr"))
    put(converted, "duration", spec.text("duration"))
    put(converted, "isCA", spec.flag("isCA"))
    converted["usages"] = spec.texts("usages") or list(CERT_MANAGER_DEFAULT_USAGES)
    converted["issuerRef"] = _issuer_ref(spec, notes)
    identity = [name for name in ("username", "uid", "groups", "extra") if spec.take(name) is not None]
    if identity:
        notes.note(
            spec.path,
            f"{', '.join(identity)}: who created the request, as cert-manager recorded it; the API server "
            "checks who creates the converted one",
        )
    notes.leftovers(spec)
    if converted.get("isCA") and converted["issuerRef"].get("kind") == "ClusterIssuer":
        notes.note(spec.at("isCA"), ISSUANCE_POLICY)
    return converted
