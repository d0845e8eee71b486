"""The latest observed objects: fed by watch events and by what the workers report they wrote.

Only the event loop writes the store (see `certsmith.runtime`); worker threads read it.
"""

from __future__ import annotations

import abc
import datetime
import json
import marshal
import sys
import zlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from certsmith.api import (
    API_VERSION,
    CERTIFICATE_REQUESTS,
    CERTIFICATES,
    CLUSTER_ISSUERS,
    GATEWAYS,
    INGRESSES,
    ISSUERS,
)
from certsmith.api.bundle import BUNDLES
from certsmith.api.pod_certificate_request import POD_CERTIFICATE_REQUESTS
from certsmith.issuers.acme.orders import presented_http01_tokens
from certsmith.kube.port import Key
from certsmith.kube.secrets import ObservedSecret
from certsmith.kube.trust import Target
from certsmith.tls_secret import (
    ALT_NAMES,
    CA_CERT,
    CERTIFICATE_NAME,
    COMMON_NAME,
    IP_SANS,
    ISSUER_KIND,
    ISSUER_NAME,
    MANAGED_LABEL,
    REQUESTED_DURATION,
    REVISION,
    SECRET_TYPE,
    TLS_CERT,
    TLS_KEY,
    URI_SANS,
    SecretContents,
)

V = TypeVar("V")
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class WorkItem:
    plural: str
    key: Key

    def __str__(self) -> str:
        namespace, name = self.key
        return f"{self.plural}/{namespace + '/' if namespace else ''}{name}"


@dataclass(frozen=True)
class IssuerState:
    ready_since: datetime.datetime | None
    """When the issuer last became Ready; None while it is not Ready."""
    ca_serial: int | None = None
    """The serial number of the CA certificate it signs with, for CA issuers."""
    ca_not_after: datetime.datetime | None = None


class _Encoded(MutableMapping[Key, V], Generic[V, E]):
    """A mapping that keeps each value encoded (`_encode`) and decodes it on each read (`_decode`),
    so a read returns a new object and no caller can change what is kept. Safe to read from any
    thread while the event loop writes: iterating copies the keys at once."""

    def __init__(self) -> None:
        self._encoded: dict[Key, E] = {}

    @abc.abstractmethod
    def _encode(self, value: V) -> E: ...

    @abc.abstractmethod
    def _decode(self, encoded: E) -> V: ...

    def __getitem__(self, key: Key) -> V:
        return self._decode(self._encoded[key])

    def __setitem__(self, key: Key, value: V) -> None:
        self._encoded[key] = self._encode(value)

    def __delitem__(self, key: Key) -> None:
        del self._encoded[key]

    def __contains__(self, key: object) -> bool:
        return key in self._encoded

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._encoded))

    def __len__(self) -> int:
        return len(self._encoded)


_COMPACT_TEMPLATES = (
    {
        "apiVersion": API_VERSION,
        "kind": "CertificateRequest",
        "metadata": {"annotations": {}, "labels": {}, "ownerReferences": [{"controller": True}]},
        "spec": {"commonName": "", "usages": ["digital signature", "key encipherment", "server auth"]},
        "status": {"acme": {"order": {"authorizations": [{"challenge": {"token": "", "type": "http-01"}}]}}},
    },
    {
        "apiVersion": API_VERSION,
        "kind": "Certificate",
        "metadata": {
            "creationTimestamp": "",
            "generation": 1,
            "name": "",
            "namespace": "",
            "resourceVersion": "",
            "uid": "",
        },
        "spec": {
            "dnsNames": [""],
            "duration": "2160h",
            "issuerRef": {"kind": "Issuer", "name": ""},
            "privateKey": {
                "algorithm": "ECDSA",
                "encoding": "PKCS1",
                "rotationPolicy": "Always",
                "size": 256,
            },
            "secretName": "",
        },
        "status": {
            "conditions": [
                {
                    "lastTransitionTime": "",
                    "message": "certificate is up to date and valid until ",
                    "observedGeneration": 1,
                    "reason": "Ready",
                    "status": "True",
                    "type": "Ready",
                }
            ],
            "failedIssuanceAttempts": 0,
            "notAfter": "",
            "notBefore": "",
            "observedGeneration": 1,
            "renewalTime": "",
            "revision": 1,
        },
    },
)
_OBJECT_DICTIONARY = b"".join(
    json.dumps(template, separators=(",", ":")).encode() for template in _COMPACT_TEMPLATES
)
"""What objects are compressed against: the names and values most Certificates carry (last, where
zlib finds them cheapest), and those of CertificateRequests and ACME orders."""


class CompactObjects(_Encoded[Mapping[str, Any], bytes]):
    """Objects kept as JSON compressed against `_OBJECT_DICTIONARY`: a Certificate held as a dict
    takes about 4.6 KiB, as JSON about 0.86 KiB, compressed about 0.3 KiB; a replica keeps every
    Certificate of its shards. Indexed by what objects are looked up by (`referring`), so that no
    lookup decodes them all."""

    def __init__(self) -> None:
        super().__init__()
        self._referring: dict[str, set[Key]] = {}

    def _encode(self, value: Mapping[str, Any]) -> bytes:
        packer = zlib.compressobj(zdict=_OBJECT_DICTIONARY)
        return packer.compress(json.dumps(value, separators=(",", ":")).encode()) + packer.flush()

    def _decode(self, encoded: bytes) -> Mapping[str, Any]:
        unpacker = zlib.decompressobj(zdict=_OBJECT_DICTIONARY)
        decoded: Mapping[str, Any] = json.loads(unpacker.decompress(encoded))
        return decoded

    def __setitem__(self, key: Key, value: Mapping[str, Any]) -> None:
        self._unindex(key)
        super().__setitem__(key, value)
        for needle in _needles(value):
            self._referring.setdefault(needle, set()).add(key)

    def __delitem__(self, key: Key) -> None:
        self._unindex(key)
        super().__delitem__(key)

    def _unindex(self, key: Key) -> None:
        kept = self._encoded.get(key)
        if kept is None:
            return
        for needle in _needles(self._decode(kept)):
            keys = self._referring.get(needle, set())
            keys.discard(key)
            if not keys:
                self._referring.pop(needle, None)

    def referring(self, needle: str) -> list[tuple[Key, Mapping[str, Any]]]:
        """The objects that name `needle` as their issuer, as an owner's uid, or as an HTTP-01 token
        they present. Safe in any thread: the keys are copied at once."""
        found = []
        for key in list(self._referring.get(needle, ())):
            encoded = self._encoded.get(key)
            if encoded is not None:
                found.append((key, self._decode(encoded)))
        return found

    def snapshot(self) -> list[tuple[Key, Mapping[str, Any]]]:
        """Every object. Safe in any thread: the keys are copied at once."""
        return [(key, self._decode(encoded)) for key, encoded in list(self._encoded.items())]


def _needles(body: Mapping[str, Any]) -> set[str]:
    """What `CompactObjects.referring` finds an object by."""
    owners = (body.get("metadata") or {}).get("ownerReferences") or ()
    needles = {str(((body.get("spec") or {}).get("issuerRef") or {}).get("name") or "")}
    needles.update(str(owner.get("uid") or "") for owner in owners)
    return (needles | presented_http01_tokens(body.get("status") or {})) - {""}


class UnfinishedElsewhere:
    """Other shards' objects that are not Ready for their spec, as their last watch event left them,
    at most `bound` of them. A replica that takes their shard over (its holder died) queues them at
    once, before its listing of the shard reaches them: a listing of 100,000 objects takes a minute.
    Those beyond the bound wait for the listing; each entry goes once the object is Ready or gone."""

    def __init__(self, bound: int) -> None:
        self._bound = bound
        self._objects: dict[str, CompactObjects] = {}

    def note(self, item: WorkItem, unfinished: Mapping[str, Any] | None) -> None:
        """`unfinished`: the object's body if it has work left, None if it is Ready or gone."""
        objects = self._objects.setdefault(item.plural, CompactObjects())
        if unfinished is None:
            objects.pop(item.key, None)
        elif item.key in objects or len(self) < self._bound:
            objects[item.key] = unfinished

    def take(self, taken: Callable[[Key], bool]) -> list[tuple[WorkItem, Mapping[str, Any]]]:
        """The objects whose key is `taken`, no longer kept here."""
        return [
            (WorkItem(plural, key), objects.pop(key))
            for plural, objects in self._objects.items()
            for key in objects
            if taken(key)
        ]

    def __len__(self) -> int:
        return sum(map(len, self._objects.values()))


_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def worth_keeping_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """`body` without metadata.managedFields and kubectl's last-applied-configuration annotation,
    often its largest parts (the second is a copy of the object as applied), which certsmith never
    reads."""
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    if "managedFields" not in metadata and _LAST_APPLIED not in annotations:
        return body
    kept = {name: value for name, value in metadata.items() if name != "managedFields"}
    if _LAST_APPLIED in annotations:
        kept["annotations"] = {name: value for name, value in annotations.items() if name != _LAST_APPLIED}
    return {**body, "metadata": kept}
_SECRET_DICTIONARY = marshal.dumps(
    (
        {MANAGED_LABEL: "true"},
        {
            name: ""
            for name in (
                CERTIFICATE_NAME,
                ISSUER_NAME,
                ISSUER_KIND,
                COMMON_NAME,
                ALT_NAMES,
                IP_SANS,
                URI_SANS,
                REVISION,
                REQUESTED_DURATION,
            )
        },
        {
            TLS_CERT: b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            TLS_KEY: b"-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        },
        SECRET_TYPE,
    )
)
"""What a managed Secret's blob is compressed against: the names that every one of them carries."""


_EncodedSecret = tuple[bytes, bytes | None, str | None]
"""The blob, the shared ca.crt if any, and the name of the Secret's Certificate."""


class CompactSecrets(_Encoded[ObservedSecret, _EncodedSecret]):
    """Managed Secrets, each kept as one compressed blob and decoded on each read. As Python objects
    an ECDSA certificate's Secret takes about 2.4 KiB (three dicts, a string per annotation, the
    certificate and the key), as a blob about 0.6 KiB: the blob is compressed against the names every
    managed Secret carries, and the issuing CA's certificate (`ca.crt`, the same in many Secrets) is
    kept beside it, shared. A replica keeps the Secret of every Certificate of its shards."""

    def owners(self) -> list[tuple[Key, str | None]]:
        """Each Secret's key and the name of its Certificate (annotation), without decoding any."""
        return [(key, owner) for key, (_, _, owner) in list(self._encoded.items())]

    def _encode(self, value: ObservedSecret) -> _EncodedSecret:
        contents = value.contents
        data = dict(contents.data)
        ca_certificate = data.pop(CA_CERT, None)
        packer = zlib.compressobj(zdict=_SECRET_DICTIONARY)
        labels, annotations = dict(contents.labels), dict(contents.annotations)
        fields = marshal.dumps((labels, annotations, data, contents.type, value.resource_version))
        owner = contents.annotations.get(CERTIFICATE_NAME)
        return packer.compress(fields) + packer.flush(), ca_certificate, sys.intern(owner) if owner else None

    def _decode(self, encoded: _EncodedSecret) -> ObservedSecret:
        blob, ca_certificate, _ = encoded
        unpacker = zlib.decompressobj(zdict=_SECRET_DICTIONARY)
        fields = marshal.loads(unpacker.decompress(blob))  # noqa: S302 -- only blobs this class made
        labels, annotations, data, kind, resource_version = fields
        if ca_certificate is not None:
            data[CA_CERT] = ca_certificate
        return ObservedSecret(SecretContents(labels, annotations, data, kind), resource_version)


@dataclass
class Store:
    certificates: CompactObjects = field(default_factory=CompactObjects)
    certificate_requests: CompactObjects = field(default_factory=CompactObjects)
    issuers: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    cluster_issuers: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    ingresses: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    gateways: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    """Ingresses and Gateways, for the Certificates their annotations ask for."""
    pod_certificate_requests: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    """Kubernetes' PodCertificateRequests for certsmith's signer names, until answered."""
    secrets: CompactSecrets = field(default_factory=CompactSecrets)
    """Managed Secrets (label-selected watch)."""
    secrets_listed: Callable[[Key], bool] = field(default=lambda key: True)
    """Whether `secrets` holds the Secret of Certificate `key` if that Secret exists: false while the
    Certificate's shard is being taken over and its Secrets are not all listed yet."""
    referenced: dict[Key, ObservedSecret | None] = field(default_factory=dict)
    """Secrets that issuers and keystores refer to, each watched by name; None: does not exist.
    A key that is absent has not been listed yet."""
    issuer_states: dict[WorkItem, IssuerState] = field(default_factory=dict)
    bundles: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    namespaces: dict[str, Mapping[str, str]] = field(default_factory=dict)
    """Every namespace's labels (the Bundles' namespaceSelector); terminating namespaces are left out."""
    bundle_targets: dict[tuple[str, Key], Target] = field(default_factory=dict)
    """The ConfigMaps and Secrets labelled as a Bundle's, by (kind, key) (label-selected watches)."""

    def remember(self, plural: str, key: Key, body: Mapping[str, Any]) -> None:
        self.objects(plural)[key] = worth_keeping_of(body)

    def remember_status(self, plural: str, key: Key, status: Mapping[str, Any]) -> None:
        objects = self.objects(plural)
        body = objects.get(key)
        if body is not None:
            merged = {**(body.get("status") or {}), **status}
            objects[key] = {
                **body,
                "status": {name: value for name, value in merged.items() if value is not None},
            }

    def ca_not_after(self, plural: str, key: Key) -> datetime.datetime | None:
        state = self.issuer_states.get(WorkItem(plural, key))
        return state.ca_not_after if state else None

    def objects(self, plural: str) -> MutableMapping[Key, Mapping[str, Any]]:
        return {
            CERTIFICATES: self.certificates,
            CERTIFICATE_REQUESTS: self.certificate_requests,
            ISSUERS: self.issuers,
            CLUSTER_ISSUERS: self.cluster_issuers,
            INGRESSES: self.ingresses,
            GATEWAYS: self.gateways,
            BUNDLES: self.bundles,
            POD_CERTIFICATE_REQUESTS: self.pod_certificate_requests,
        }[plural]
