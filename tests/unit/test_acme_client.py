"""The ACME client's handling of a CA's answers that need no network: 429 with Retry-After, key
authorizations."""

from __future__ import annotations

import datetime
import json

import pytest
import requests
from acme import errors, messages

from certsmith.issuers.acme.client import (
    AcmeError,
    AcmeNetwork,
    key_authorization,
    retry_after,
)
from certsmith.pki.keys import KeyAlgorithm, KeySpec, generate_private_key


def _response(status: int, headers: dict[str, str], body: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    response._content = json.dumps(body).encode()
    return response


def test_a_429_is_rate_limited_with_the_cas_retry_after() -> None:
    problem = {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "too many new orders recently"}
    before = datetime.datetime.now(datetime.UTC)
    with pytest.raises(AcmeError) as refused:
        AcmeNetwork._check_response(_response(429, {"Retry-After": "120"}, problem))
    assert refused.value.reason == "rateLimited"
    assert "too many new orders recently" in str(refused.value)
    assert refused.value.retry_after is not None
    assert 119 <= (refused.value.retry_after - before).total_seconds() <= 121


def test_a_409_already_replaced_is_the_cas_problem_and_any_other_409_a_conflict() -> None:
    problem = {"type": "urn:ietf:params:acme:error:alreadyReplaced", "detail": "already has a replacement"}
    headers = {"Content-Type": "application/problem+json"}
    with pytest.raises(messages.Error) as refused:
        AcmeNetwork._check_response(_response(409, headers, problem))
    assert refused.value.typ == "urn:ietf:params:acme:error:alreadyReplaced"
    with pytest.raises(errors.ConflictError):
        AcmeNetwork._check_response(_response(409, {"Location": "https://ca.test/acct/1"}, {}))


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    date = _response(200, {"Retry-After": "Sat, 28 Nov 2026 12:00:00 GMT"}, {})
    assert retry_after(date) == datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
    assert retry_after(_response(200, {}, {})) is None
    assert retry_after(_response(200, {"Retry-After": "soon"}, {})) is None


def test_key_authorizations_are_the_token_and_the_account_keys_thumbprint() -> None:
    key = generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))
    answer = key_authorization("token", key)
    token, thumbprint = answer.split(".")
    assert token == "token"
    assert len(thumbprint) == 43, "base64url of a SHA-256 digest, unpadded"
    assert key_authorization("token", key) == answer
    assert key_authorization("token", generate_private_key(KeySpec(KeyAlgorithm.ECDSA, 256))) != answer
