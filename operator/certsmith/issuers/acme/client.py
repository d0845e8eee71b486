"""The only code that talks to an ACME CA: certbot's `acme` package (JWS, nonces, RFC 8555 messages)
with our error mapping. Every call blocks (each request under a timeout): it runs in an issuer's lane
(`certsmith.engine`), never in a reconcile or on the event loop.

Answers come back as the CA's JSON, for the pure `orders` module to fold. Failures come back as
`AcmeError` with a CamelCase reason for status conditions and a message in the CA's own words.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import os
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from acme import errors, messages
from acme.client import ClientNetwork, ClientV2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy import b64
from josepy.errors import Error as JoseError
from josepy.interfaces import JSONDeSerializable
from josepy.json_util import field
from josepy.jwa import ES256, ES384, ES512, RS256, JWASignature
from josepy.jwk import JWK, JWKEC, JWKRSA

from certsmith import __version__
from certsmith.api.acme import is_ip_address
from certsmith.issuers import RenewalInfoAnswer
from certsmith.pki.keys import PrivateKey

_PROFILES_KEPT = 32
_ERROR_CODE_LENGTH = 64
_PROFILE_DESCRIPTION_LENGTH = 256
_TOO_MANY_REQUESTS = 429
_CONFLICT = 409
_NONCE_ATTEMPTS = 4
"""Attempts of one request on badNonce (the acme package retries once more inside each)."""


UNKNOWN_PROFILE = "UnknownProfile"
"""The reason of an issuer whose spec.acme.profile the CA's directory does not offer."""

INVALID_PROFILE = "InvalidProfile"
"""The reason of a newOrder the CA refused for its profile (RFC draft-aaron-acme-profiles
invalidProfile): one it offered when the issuer became Ready and no longer takes."""

SERVER_UNREACHABLE = "ServerUnreachable"
"""The reason of a request that got no answer (refused, reset, timed out): it counts against the
issuer's health."""

RequestObserver = Callable[[str, str, float], None]
"""Told of every request: (action, status, seconds); the status is "ok", the ACME error type (such
as rateLimited), or "unreachable"."""


class AcmeError(RuntimeError):
    def __init__(self, reason: str, message: str, retry_after: datetime.datetime | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class OrderGoneError(AcmeError):
    """The CA no longer knows the order (expired, or the CA lost it): start a new one."""


@dataclass(frozen=True)
class OrderAnswer:
    url: str
    body: Mapping[str, Any]
    authorizations: Mapping[str, Mapping[str, Any]]
    retry_after: datetime.datetime | None = None


class AcmeClient:
    """One ACME account at one server."""

    def __init__(
        self,
        server: str,
        key: PrivateKey,
        ca_bundle: bytes | None,
        skip_tls_verify: bool,
        timeout: int,
        observe: RequestObserver = lambda action, status, seconds: None,
    ) -> None:
        """`timeout`: seconds to wait for the server's answer to one request."""
        self.server = server
        self._observe = observe
        self.jwk, algorithm = _jwk(key)
        self._net = AcmeNetwork(
            self.jwk, alg=algorithm, user_agent=f"certsmith/{__version__}", timeout=timeout
        )
        verify: bool | str = not skip_tls_verify
        if ca_bundle is not None:
            handle, path = tempfile.mkstemp(prefix="certsmith-acme-ca-", suffix=".pem")
            with os.fdopen(handle, "wb") as file:
                file.write(ca_bundle)
            weakref.finalize(self, os.unlink, path)
            verify = path
        self._net.verify_ssl = verify  # type: ignore[assignment]  # requests takes a bundle's path too
        self._client: ClientV2 | None = None
        self.profiles: tuple[tuple[str, str], ...] = ()
        """(name, description) of each certificate profile the CA's directory offers, sorted by name,
        once the directory is read: at most 32, descriptions cut to 256 characters (they end up in
        the issuer's status)."""
        self.account_uri: str | None = None
        self._registration: tuple[str | None, tuple[str, str] | None] | None = None

    @property
    def _v2(self) -> ClientV2:
        if self._client is None:
            action = f"reading the ACME directory {self.server}"
            try:
                with _calling(action), self._observed("directory"):
                    directory = ClientV2.get_directory(self.server, self._net)
            except AcmeError as error:
                if error.reason not in ("ACMEError", "malformed"):
                    raise
                raise AcmeError(
                    "NotAnACMEDirectory",
                    f"{error}; spec.acme.server must be the URL of the CA's ACME directory, e.g. "
                    f"https://acme-v02.api.letsencrypt.org/directory",
                ) from None
            self._client = ClientV2(directory, self._net)
            offered = directory.meta.profiles or {}
            self.profiles = tuple(
                (str(name), str(description)[:_PROFILE_DESCRIPTION_LENGTH])
                for name, description in sorted(offered.items())[:_PROFILES_KEPT]
            )
        return self._client

    def caa_identities(self) -> tuple[str, ...]:
        """The domains the CA's directory names in `meta.caaIdentities` (RFC 8555 section 7.1.1)."""
        meta = self._v2.directory.meta
        return tuple(meta.caa_identities or ()) if meta else ()

    def require_profile(self, profile: str | None) -> None:
        """Raise AcmeError(UnknownProfile) when `profile` is set and the CA's directory does not offer
        it, so no order is ever made for it."""
        if profile is None:
            return
        self._v2  # noqa: B018 -- reads the directory, and with it the profiles
        offered = [name for name, _ in self.profiles]
        if profile in offered:
            return
        if not offered:
            raise AcmeError(
                UNKNOWN_PROFILE,
                f"spec.acme.profile is {profile!r}, but {self.server} offers no profiles (its directory "
                f"has no meta.profiles); remove spec.acme.profile",
            )
        raise AcmeError(
            UNKNOWN_PROFILE,
            f"spec.acme.profile is {profile!r}, which {self.server} does not offer; set it to one of "
            f"{', '.join(offered)}, or remove it for the CA's default",
        )

    def register(self, email: str | None, binding: tuple[str, str] | None) -> str:
        """The account's URI, registering the key (or finding its account) at the CA.

        `binding` is (key ID, base64url MAC key) for external account binding.
        """
        client = self._v2
        eab = None
        with _calling("registering the ACME account"):
            if binding is not None:
                eab = messages.ExternalAccountBinding.from_data(
                    self.jwk.public_key(), binding[0], binding[1], client.directory
                )
            elif client.external_account_required():
                raise AcmeError(
                    "ExternalAccountRequired",
                    f"{self.server} requires external account binding: set "
                    f"spec.acme.externalAccountBinding with the key ID and MAC key the CA gave you",
                )
            registration = messages.NewRegistration.from_data(
                email=email, terms_of_service_agreed=True, external_account_binding=eab
            )
            uri = self._new_account(client, registration)
        self.account_uri = uri
        self._registration = (email, binding)
        return uri

    def _new_account(self, client: ClientV2, registration: messages.NewRegistration) -> str:
        """The account's URI, retrying on badNonce as every other request does."""
        for attempt in range(_NONCE_ATTEMPTS):
            try:
                with self._observed("register"):
                    return str(client.new_account(registration).uri)
            except errors.ConflictError as existing:
                uri = str(existing.location)
                self._net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
                return uri
            except messages.Error as error:
                if error.code != "badNonce" or attempt == _NONCE_ATTEMPTS - 1:
                    raise
        raise AcmeError("BadNonce", f"{self.server}: the CA rejected {_NONCE_ATTEMPTS} nonces in a row")

    def new_order(
        self, identifiers: Sequence[str], profile: str | None, replaces: str | None = None
    ) -> OrderAnswer:
        """A new order for DNS names and IP addresses (RFC 8738), in `profile` (None: the CA's
        choice); `replaces` is the ARI certID of the certificate it renews (RFC 9773 section 5)."""
        client = self._v2
        order = NewOrderMessage(
            identifiers=[
                messages.Identifier(typ=_identifier_type(name), value=name) for name in identifiers
            ],
            profile=profile,
            replaces=replaces,
        )
        try:
            with _calling(f"creating an order for {', '.join(identifiers)}"):
                response = self._post(client.directory["newOrder"], order, "new-order")
        except AcmeError as error:
            if error.reason != INVALID_PROFILE:
                raise
            raise AcmeError(
                error.reason,
                f"{error}; spec.acme.profile {profile!r} is not one the CA takes now: set one of those in "
                f"the issuer's status.acme.profiles, or remove it",
            ) from None
        with _calling(f"creating an order for {', '.join(identifiers)}"):
            url = response.headers.get("Location")
            if not url:
                raise AcmeError("OrderFailed", "the CA created an order without a Location")
            body = response.json()
            return OrderAnswer(url, body, self._authorizations(body.get("authorizations") or ()))

    def fetch(self, url: str, authorizations: Sequence[str]) -> OrderAnswer:
        """The order and the named authorizations (the others are final and need no fetch). The
        authorizations are read first, so the order's state is never older than theirs."""
        with _calling(f"fetching order {url}"):
            try:
                fetched = self._authorizations(authorizations)
                response = self._post(url, None, "order")
            except messages.Error as error:
                if error.code in ("malformed", "notFound", "unauthorized") or "404" in str(error):
                    message = f"the CA no longer knows order {url}: {error}"
                    raise OrderGoneError("OrderGone", message) from None
                raise
            return OrderAnswer(
                url,
                response.json(),
                fetched,
                retry_after(response),
            )

    def answer(self, challenge_url: str) -> Mapping[str, Any]:
        """Tell the CA the challenge is ready to be validated; its answer (the challenge object)."""
        with _calling(f"answering challenge {challenge_url}"):
            response: Mapping[str, Any] = self._post(challenge_url, _EmptyObject(), "answer").json()
            return response

    def finalize(self, order_url: str, finalize_url: str, csr: x509.CertificateSigningRequest) -> OrderAnswer:
        """Send the CSR; the order as the CA answers (processing, or valid at once)."""
        with _calling(f"finalizing order {order_url}"):
            response = self._post(finalize_url, messages.CertificateRequest(csr=csr), "finalize")
            body = response.json()
            if body.get("status") == "invalid":
                problem = body.get("error") or {}
                raise AcmeError(
                    "OrderFailed", f"the CA refused to finalize: {problem.get('detail', 'invalid')}"
                )
            return OrderAnswer(order_url, body, {}, retry_after(response))

    def download(self, certificate_url: str) -> list[str]:
        """Every chain the CA offers for a valid order's certificate, as PEM, the default first."""
        with _calling(f"downloading certificate {certificate_url}"):
            download = self._post(certificate_url, None, "certificate")
            links = [
                link["url"]
                for link in requests.utils.parse_header_links(download.headers.get("Link", ""))
                if link.get("rel") == "alternate" and link.get("url")
            ]
            return [download.text, *(self._post(link, None, "certificate").text for link in links)]

    def key_authorization(self, token: str) -> str:
        return _key_authorization(token, self.jwk)

    def offers_renewal_info(self) -> bool | None:
        """Whether the CA's directory names a renewalInfo resource; None until it has been read."""
        if self._client is None:
            return None
        return _renewal_info_url(self._client.directory) is not None

    def renewal_info(self, cert_id: str) -> RenewalInfoAnswer | None:
        """The CA's renewal information for one certificate (an unauthenticated GET, RFC 9773
        section 4); None if the CA offers none."""
        base = _renewal_info_url(self._v2.directory)
        if base is None:
            return None
        with (
            _calling(f"reading the renewal information of certificate {cert_id}"),
            self._observed("renewal-info"),
        ):
            response = self._net.get(f"{base.rstrip('/')}/{cert_id}", content_type="application/json")
            when = retry_after(response)
            now = datetime.datetime.now(datetime.UTC)
            return RenewalInfoAnswer(
                response.json(), max(when - now, datetime.timedelta(0)) if when else None
            )

    def _authorizations(self, urls: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        return {url: self._post(url, None, "authorization").json() for url in urls}

    @contextlib.contextmanager
    def _observed(self, action: str) -> Iterator[None]:
        started = time.monotonic()
        status = "ok"
        try:
            yield
        except messages.Error as error:
            status = _error_code(error)
            raise
        except errors.ConflictError:
            status = "200"
            raise
        except AcmeError as error:
            status = error.reason
            raise
        except requests.exceptions.RequestException:
            status = "unreachable"
            raise
        finally:
            self._observe(action, status, time.monotonic() - started)

    def _post(self, url: str, body: JSONDeSerializable | None, action: str) -> requests.Response:
        """POST, retrying on badNonce, and registering again once if the CA forgot the account (a CA
        that lost its database, or an account deactivated by hand)."""
        new_nonce = self._v2.directory["newNonce"]
        registered_again = False
        for attempt in range(_NONCE_ATTEMPTS):
            try:
                with self._observed(action):
                    return self._net.post(url, body, new_nonce_url=new_nonce)
            except messages.Error as error:
                if error.code == "accountDoesNotExist" and self._registration and not registered_again:
                    self._net.account = None
                    self.register(*self._registration)
                    registered_again = True
                    continue
                if error.code != "badNonce" or attempt == _NONCE_ATTEMPTS - 1:
                    raise
        raise AcmeError("BadNonce", f"{url}: the CA rejected {_NONCE_ATTEMPTS} nonces in a row")


class NewOrderMessage(messages.NewOrder):
    """newOrder with the `replaces` field of RFC 9773 section 5, which certbot's `acme` lacks."""

    replaces: str | None = field("replaces", omitempty=True)


def _renewal_info_url(directory: messages.Directory) -> str | None:
    try:
        return str(directory["renewalInfo"])
    except KeyError:
        return None


class AcmeNetwork(ClientNetwork):
    """certbot's network layer, except that a 429 becomes AcmeError("rateLimited") carrying the CA's
    Retry-After, so the next attempt waits at least that long; and a 409 `alreadyReplaced` (RFC 9773
    section 5) is the CA's problem, not certbot's ConflictError (which it keeps for an existing
    account)."""

    @classmethod
    def _check_response(
        cls, response: requests.Response, content_type: str | None = None
    ) -> requests.Response:
        if response.status_code == _TOO_MANY_REQUESTS:
            try:
                detail = str(response.json().get("detail", ""))
            except ValueError:
                detail = ""
            when = retry_after(response)
            after = f"; it asks to wait until {when.isoformat(timespec='seconds')}" if when else ""
            raise AcmeError(
                "rateLimited", f"the CA refused: too many requests ({detail or 'HTTP 429'}){after}", when
            )
        if response.status_code == _CONFLICT:
            problem = _problem(response)
            if str(problem.get("type", "")).endswith(":alreadyReplaced"):
                raise messages.Error.from_json(problem)
        checked: requests.Response = super()._check_response(response, content_type)
        return checked


def _problem(response: requests.Response) -> dict[str, Any]:
    """The response's RFC 7807 problem document; {} if it has none."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def retry_after(response: requests.Response) -> datetime.datetime | None:
    """The time a response's Retry-After header names (seconds or an HTTP date), in UTC."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    now = datetime.datetime.now(datetime.UTC)
    if value.strip().isdigit():
        return now + datetime.timedelta(seconds=int(value))
    try:
        return email.utils.parsedate_to_datetime(value).astimezone(datetime.UTC)
    except (TypeError, ValueError):
        return None


class _EmptyObject(JSONDeSerializable):
    """The `{}` payload that answers a challenge (RFC 8555 section 7.5.1)."""

    def to_partial_json(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_json(cls, jobj: object) -> _EmptyObject:
        return cls()


@contextlib.contextmanager
def _calling(action: str) -> Iterator[None]:
    try:
        yield
    except AcmeError:
        raise
    except messages.Error as error:
        code = _error_code(error)
        reason = code[0].upper() + code[1:]
        raise AcmeError(reason, f"{action}: the CA answered {error.typ}: {error.detail}") from None
    except requests.exceptions.SSLError as error:
        raise AcmeError(
            "TLSError",
            f"{action}: the CA's TLS certificate was not trusted ({_first_line(error)}); "
            f"set spec.acme.caBundle to the CA's root",
        ) from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
        raise AcmeError(SERVER_UNREACHABLE, f"{action}: {_first_line(error)}") from None
    except (errors.Error, requests.exceptions.RequestException, ValueError, JoseError) as error:
        raise AcmeError("ACMEError", f"{action}: {_first_line(error)}") from None


def _identifier_type(identifier: str) -> messages.IdentifierType:
    return messages.IDENTIFIER_IP if is_ip_address(identifier) else messages.IDENTIFIER_FQDN


def _error_code(error: messages.Error) -> str:
    """The ACME error's type without its namespace: the `acme` package names only the types of RFC
    8555 (its `code`); later ones, such as invalidProfile, are read from the URN, letters only."""
    if error.code:
        return str(error.code)
    name = (error.typ or "").rsplit(":", 1)[-1]
    return name[:_ERROR_CODE_LENGTH] if name.isalpha() else "error"


def _first_line(error: BaseException) -> str:
    return (str(error) or type(error).__name__).splitlines()[0][:300]


def key_authorization(token: str, account_key: PrivateKey) -> str:
    """What answers a challenge (RFC 8555 section 8.1): the token and the account key's thumbprint."""
    return _key_authorization(token, _jwk(account_key)[0])


def _key_authorization(token: str, jwk: JWK) -> str:
    return f"{token}.{b64.b64encode(jwk.thumbprint()).decode('ascii')}"


def _jwk(key: PrivateKey) -> tuple[JWK, JWASignature]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithms = {256: ES256, 384: ES384, 521: ES512}
        return JWKEC(key=key), algorithms[key.curve.key_size]
    if isinstance(key, rsa.RSAPrivateKey):
        return JWKRSA(key=key), RS256
    raise AcmeError("AccountKeyUnsupported", "the ACME account key must be an ECDSA or RSA key")
