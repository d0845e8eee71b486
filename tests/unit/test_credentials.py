"""Values from users' Secrets are checked where they are read: a bad one is a status that names the
field and the fix (never the value), and no ACME order is made while it is bad."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from certsmith.issuers.credentials import (
    InvalidCredentialError,
    account_key,
    eab_mac_key,
    keystore_password,
    tsig_secret,
)
from certsmith.kube.port import NamespaceNotFoundError
from certsmith.tls_secret import SecretContents
from tests.unit.test_reconcile import NS, World

WHERE = "field: key k of Secret ns/s"


def _pem(key: Any) -> bytes:
    return bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))


@pytest.mark.parametrize(
    ("check", "value", "reason"),
    [
        (tsig_secret, b"not base64!", "InvalidTSIGSecret"),
        (tsig_secret, b"\xff\xfe", "InvalidTSIGSecret"),
        (tsig_secret, b"", "InvalidTSIGSecret"),
        (eab_mac_key, "kéy".encode(), "InvalidEABKey"),
        (eab_mac_key, b"has spaces and /+", "InvalidEABKey"),
        (account_key, b"-----BEGIN PRIVATE KEY-----\ngarbage\n", "InvalidAccountKey"),
        (account_key, _pem(ed25519.Ed25519PrivateKey.generate()), "InvalidAccountKey"),
        (account_key, _pem(rsa.generate_private_key(65537, 1024)), "InvalidAccountKey"),  # noqa: S505 -- on purpose
        (keystore_password, b"", "InvalidKeystorePassword"),
        (keystore_password, b"\xff\xfe", "InvalidKeystorePassword"),
    ],
)
def test_a_bad_value_names_the_field_and_the_fix_and_not_the_value(
    check: Any, value: bytes, reason: str
) -> None:
    with pytest.raises(InvalidCredentialError) as raised:
        check(value, WHERE)
    assert raised.value.reason == reason
    message = str(raised.value)
    assert message.startswith(WHERE)
    assert "; " in message, "the message says how to fix it"
    if len(value) > 4:
        assert value.decode("latin-1") not in message


def test_good_values_pass() -> None:
    assert tsig_secret(b" c2VjcmV0 \n", WHERE) == b"c2VjcmV0"
    assert eab_mac_key(
        b"zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W\n", WHERE
    ).startswith("zWND")
    assert account_key(_pem(ec.generate_private_key(ec.SECP256R1())), WHERE)
    assert keystore_password("pässword".encode(), WHERE) == "pässword".encode()


def _acme_world(**acme: Any) -> World:
    world = World()
    world.kube.put_secret(
        NS, "account", SecretContents(data={"tls.key": _pem(ec.generate_private_key(ec.SECP256R1()))})
    )
    world.referenced.add((NS, "account"))
    spec = {"server": "https://127.0.0.1:1/directory", "privateKeySecretRef": {"name": "account"}, **acme}
    for solver in spec.get("solvers") or ():
        secret = ((solver.get("dns01") or {}).get("rfc2136") or {}).get("tsigSecretSecretRef")
        if secret:
            world.referenced.add((NS, secret["name"]))
    eab = (spec.get("externalAccountBinding") or {}).get("keySecretRef")
    if eab:
        world.referenced.add((NS, eab["name"]))
    return world


@pytest.mark.parametrize(
    ("secret", "acme", "reason"),
    [
        (
            b"not base64!",
            {
                "solvers": [
                    {
                        "dns01": {
                            "rfc2136": {
                                "nameserver": "127.0.0.1:1",
                                "tsigKeyName": "key",
                                "tsigSecretSecretRef": {"name": "bad", "key": "secret"},
                            }
                        }
                    }
                ]
            },
            "InvalidTSIGSecret",
        ),
        (
            "kéy".encode(),
            {
                "externalAccountBinding": {"keyID": "id", "keySecretRef": {"name": "bad", "key": "secret"}},
                "solvers": [{"http01": {"ingress": {}}}],
            },
            "InvalidEABKey",
        ),
    ],
)
def test_an_issuer_with_a_bad_secret_says_so_and_no_order_is_made(
    secret: bytes, acme: dict[str, Any], reason: str
) -> None:
    world = _acme_world(**acme)
    world.kube.put_secret(NS, "bad", SecretContents(data={"secret": secret}))
    issuer = world.issuer(
        "acme",
        {
            "acme": {
                "server": "https://127.0.0.1:1/directory",
                "privateKeySecretRef": {"name": "account"},
                **acme,
            }
        },
    )
    world.reconcile_issuer(issuer)
    ready = world.issuer_ready(issuer)
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert f"key secret of Secret {NS}/bad" in ready["message"]
    assert reason in world.reasons(), "and a Warning Event"
    world.certificate("web", issuerRef={"name": "acme"})
    world.reconcile("web")
    certificate = world.ready("web")
    assert (certificate["status"], certificate["reason"]) == ("False", "IssuerNotReady")
    assert "OrderCreated" not in world.reasons()
    assert "order" not in (world.status("web").get("acme") or {})


def test_an_empty_keystore_password_fails_the_attempt_and_says_which_field() -> None:
    world = World()
    world.issuer("selfsigned", {"selfSigned": {}})
    world.kube.put_secret(NS, "password", SecretContents(data={"password": b""}))
    world.certificate(
        "store",
        keystores={"pkcs12": {"create": True, "passwordSecretRef": {"name": "password", "key": "password"}}},
    )
    world.reconcile("store")
    ready = world.ready("store")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidKeystorePassword")
    assert "keystores.pkcs12.passwordSecretRef" in ready["message"]
    assert (NS, "store") not in world.kube.secrets


def test_an_account_key_that_cannot_be_written_for_want_of_its_namespace_is_said_on_the_issuer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World()

    def missing(namespace: str, name: str, *_: Any) -> Any:
        raise NamespaceNotFoundError(f"writing Secret {namespace}/{name}", namespace)

    monkeypatch.setattr(world.kube, "write_secret", missing)
    spec = {"server": "https://127.0.0.1:1/directory", "privateKeySecretRef": {"name": "account"}}
    issuer = world.issuer("acme", {"acme": {**spec, "solvers": [{"http01": {"ingress": {}}}]}}, cluster=True)
    world.reconcile_issuer(issuer)
    ready = world.issuer_ready(issuer)
    assert (ready["status"], ready["reason"]) == ("False", "NamespaceNotFound")
    assert "namespace certsmith does not exist; create it" in ready["message"]


def test_an_account_key_is_parsed_once_per_version_of_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every reconcile of an ACME Certificate resolves its issuer; an RSA key costs milliseconds to
    parse, so it is parsed again only when its Secret changes, and a changed Secret is always read."""
    parsed: list[bytes] = []

    def counted(pem: bytes, where: str) -> Any:
        parsed.append(pem)
        return account_key(pem, where)

    monkeypatch.setattr("certsmith.issuers.resolver.account_key", counted)
    world = _acme_world()
    issuer = world.issuer(
        "acme",
        {"acme": {"server": "https://127.0.0.1:1/directory", "privateKeySecretRef": {"name": "account"}}},
    )
    world.reconcile_issuer(issuer)
    world.reconcile_issuer(issuer)
    assert len(parsed) == 1
    world.kube.put_secret(
        NS, "account", SecretContents(data={"tls.key": _pem(ed25519.Ed25519PrivateKey.generate())})
    )
    world._watch()
    world.reconcile_issuer(issuer)
    assert len(parsed) == 2
    assert world.issuer_ready(issuer)["reason"] == "InvalidAccountKey"
