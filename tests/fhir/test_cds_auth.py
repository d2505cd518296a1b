"""CDS Hooks client authentication: the signed JWT on every call, checked as CDS Hooks 2.0 says.

Real keys (EC P-384 and RSA, made by `cryptography`), tokens signed by PyJWT as a CDS client
would, a JWK Set served over HTTP on 127.0.0.1, and the specification's own example token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mbcnav.fhir import _cds_auth
from mbcnav.fhir._cds_auth import CLIENTS_ENV, ConfigError, Denied, Policy
from tests.api.client import call
from tests.fhir.fhir_server import serve_json
from tests.fhir.test_cds_hooks import PV, mitre01, prefetch_for, request

ISS = "https://ehr.example.org/"
BASE = "http://testserver"
PATIENT = "mCODETrialMatchingPatientExample01"


class Signer:
    """A CDS client's key pair; `token()` signs a JWT the way a CDS client does."""

    def __init__(self, kid: str, kind: str = "ec") -> None:
        self.kid = kid
        self.alg = "ES384" if kind == "ec" else "RS384"
        self.key = ec.generate_private_key(ec.SECP384R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.algorithms.ECAlgorithm if self.alg.startswith("ES") else jwt.algorithms.RSAAlgorithm
        public: dict[str, Any] = json.loads(algorithm.to_jwk(self.key.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": self.alg}

    def token(self, aud: str, *, iss: str = ISS, lifetime: int = 300, iat_offset: int = 0, jti: str | None = None,
              headers: dict[str, Any] | None = None, drop: tuple[str, ...] = ()) -> str:
        now = int(time.time()) + iat_offset
        claims = {"iss": iss, "sub": "client-id", "aud": aud, "iat": now, "exp": now + lifetime,
                  "jti": jti or str(uuid.uuid4()), "tenant": "clinic-1"}
        for name in drop:
            claims.pop(name)
        header = {"kid": self.kid, "typ": "JWT", **(headers or {})}
        return jwt.encode(claims, self.key, algorithm=self.alg, headers=header)


def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clients: list[dict[str, Any]], **extra: Any) -> None:
    path = tmp_path / f"cds-clients-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps({"clients": clients, **extra}))
    monkeypatch.setenv(CLIENTS_ENV, str(path))


@pytest.fixture
def signer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Signer:
    key = Signer("ehr-2026")
    configure(tmp_path, monkeypatch, [{"iss": ISS, "jwks": {"keys": [key.jwk()]}}])
    return key


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def patient_view(token: str | None) -> Any:
    body = request("patient-view", PATIENT, prefetch=prefetch_for(mitre01(), PATIENT))
    return call("POST", PV, json=body, headers=bearer(token) if token else {})


def denied(response: Any, words: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert words in response.json()["error"]


def test_a_signed_token_from_a_trusted_client_opens_every_endpoint(signer: Signer) -> None:
    assert call("GET", "/cds-services", headers=bearer(signer.token(f"{BASE}/cds-services"))).status_code == 200
    response = patient_view(signer.token(f"{BASE}{PV}"))
    assert response.status_code == 200 and response.json()["cards"]
    feedback = call("POST", f"{PV}/feedback", json={"feedback": []},
                    headers=bearer(signer.token([f"{BASE}{PV}/feedback"])))   # aud may be an array
    assert feedback.status_code == 200


def test_without_a_token_every_endpoint_answers_401(signer: Signer) -> None:
    denied(call("GET", "/cds-services"), "Authorization: Bearer")
    denied(patient_view(None), "Authorization: Bearer")
    denied(call("POST", f"{PV}/feedback", json={"feedback": []}), "Authorization: Bearer")
    denied(call("GET", "/cds-services", headers={"Authorization": "Bearer not-a-jwt"}), "not a JWT")


def test_claims_are_checked(signer: Signer) -> None:
    denied(patient_view(signer.token(f"{BASE}/cds-services")), "'aud' must be the URL")     # discovery's aud
    denied(patient_view(signer.token(f"{BASE}{PV}", lifetime=-120)), "expired")
    denied(patient_view(signer.token(f"{BASE}{PV}", iat_offset=600)), "ImmatureSignatureError")
    denied(patient_view(signer.token(f"{BASE}{PV}", lifetime=4 * 3600)), "too far ahead")
    denied(patient_view(signer.token(f"{BASE}{PV}", iss="https://elsewhere.example/")), "not a trusted")
    for claim in ("jti", "iat", "exp"):
        denied(patient_view(signer.token(f"{BASE}{PV}", drop=(claim,))), f"'{claim}' claim")


def test_a_token_is_accepted_once(signer: Signer) -> None:
    token = signer.token(f"{BASE}{PV}")
    assert patient_view(token).status_code == 200
    denied(patient_view(token), "replay")


def test_keys_and_algorithms(signer: Signer) -> None:
    stranger = Signer("ehr-2026")    # same kid, different key: the signature does not verify
    denied(patient_view(stranger.token(f"{BASE}{PV}")), "InvalidSignatureError")
    denied(patient_view(Signer("other-kid").token(f"{BASE}{PV}")), "'kid' is not in")
    claims = {"iss": ISS, "aud": f"{BASE}{PV}", "iat": int(time.time()), "exp": int(time.time()) + 60, "jti": "x"}
    hmac = jwt.encode(claims, "shared-secret-of-at-least-32-bytes-long", algorithm="HS256", headers={"kid": "ehr-2026"})
    denied(patient_view(hmac), "'HS256' is not accepted")
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "ehr-2026"})
    denied(patient_view(unsigned), "'none' is not accepted")
    denied(patient_view(signer.token(f"{BASE}{PV}", headers={"jku": "https://attacker.example/jwks"})), "'jku'")


@contextmanager
def jwks_server(keys: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    """A JWK Set over HTTP on 127.0.0.1; yields its URL and the list of paths fetched."""
    fetched: list[str] = []

    def answer(path: str, _authorization: str | None) -> tuple[int, dict[str, Any]]:
        fetched.append(path)
        return 200, keys

    with serve_json(answer) as base:
        yield f"{base}/jwks.json", fetched


def test_key_set_fetched_from_the_client_url_cached_and_refreshed_on_rotation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Signer("k1"), Signer("k2", kind="rsa")
    keys: dict[str, Any] = {"keys": [old.jwk()]}
    with jwks_server(keys) as (url, fetched):
        configure(tmp_path, monkeypatch, [{"iss": ISS, "jwks_url": url}])
        assert patient_view(old.token(f"{BASE}{PV}", headers={"jku": url})).status_code == 200
        assert patient_view(old.token(f"{BASE}{PV}")).status_code == 200
        assert len(fetched) == 1                      # the second call used the cached set
        keys["keys"].append(new.jwk())                # the client rotates to an RS384 key
        monkeypatch.setattr(_cds_auth, "JWKS_REFRESH_SECONDS", 0)
        assert patient_view(new.token(f"{BASE}{PV}")).status_code == 200
        assert len(fetched) == 2                      # an unknown kid fetched the set again


def test_the_specification_example_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CDS Hooks 2.0 example: its ES384 signature verifies with the published key; it expired in 2015."""
    spec_key = {"kty": "EC", "use": "sig", "crv": "P-384", "kid": "example-kid", "alg": "ES384",
                "x": "46SDH7Znh821wblCBglA61sNE9ZrHYKKt3qRtRTmSXyOI_FIGBLWrWa0GPUkDCEk",
                "y": "XMcRuuoGW7CXjQdy-F5i3FeBE0x9hPLdeFdSoDd3ELmx404tLX0VRRcqzAsPhXcI"}
    token = (
        "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCIsImtpZCI6ImV4YW1wbGUta2lkIiwiamt1IjoiaHR0cHM6Ly9maGlyLWVoci5leGFtcGxlLmNv"
        "bS9qd2tfdXJpIn0.eyJpc3MiOiJodHRwczovL2ZoaXItZWhyLmV4YW1wbGUuY29tLyIsInN1YiI6ImNsaWVudF9pZCIsImF1ZCI6Imh0dHBz"
        "Oi8vY2RzLmV4YW1wbGUub3JnL2Nkcy1zZXJ2aWNlcy9zb21lLXNlcnZpY2UiLCJleHAiOjE0MjI1Njg4NjAsImlhdCI6MTMxMTI4MDk3MCwi"
        "anRpIjoiZWUyMmIwMjEtZTFiNy00NjExLWJhNWItOGVlYzZhMzNhYzFlIiwidGVuYW50IjoiMmRkZDZjM2EtOGU5YS00NGM2LWEzMDUtNTIx"
        "MTFhZDMwMmEyIn0.CUFPkplnWd6YGIvzoHolWCQBDsCL8QtTWKGg_QFpS169WrqDGzktRi-_we6-6rVzbjerU27ZKww_SW0-b9RTz-dPJNcq"
        "sueMio8r6EqXUXhbLm_ch3XFSbDlGHDl_tqo")
    configure(tmp_path, monkeypatch, [{"iss": "https://fhir-ehr.example.com/", "jwks_url":
                                       "https://fhir-ehr.example.com/jwk_uri", "jwks": {"keys": [spec_key]}}],
              audience_base="https://cds.example.org")
    policy = _cds_auth.policy()
    assert policy is not None

    def verify(candidate: str) -> str:
        try:
            asyncio.run(policy.verify(f"Bearer {candidate}", "https://cds.example.org/cds-services/some-service"))
        except Denied as err:
            return str(err)
        return "accepted"

    # PyJWT checks the signature before the dates: "expired" means the signature was good.
    assert verify(token) == "JWT has expired"
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["tenant"] = "another-clinic"          # any change to the signed content breaks the signature
    tampered = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert "InvalidSignatureError" in verify(f"{head}.{tampered}.{signature}")


def test_without_a_clients_file_the_service_is_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CLIENTS_ENV, raising=False)
    assert call("GET", "/cds-services").status_code == 200


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "cannot read"),
    ('{"clients": []}', "non-empty 'clients'"),
    ('{"clients": [{"jwks_url": "https://x/jwks"}]}', "clients[0]: 'iss'"),
    ('{"clients": [{"iss": "https://x/"}]}', "clients[0]: give 'jwks_url'"),
    ('{"clients": [{"iss": "https://x/", "jwks_url": "ftp://x/jwks"}]}', "http(s) URL"),
    ('{"clients": [{"iss": "https://x/", "jwks": {"key": []}}]}', "JWK Set"),
])
def test_a_broken_clients_file_stops_the_app_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, message: str) -> None:
    path = tmp_path / "clients.json"
    path.write_text(content)
    monkeypatch.setenv(CLIENTS_ENV, str(path))
    from mbcnav.web.app import create_app
    from mbcnav.web.settings import Settings

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        create_app(Settings(data_dir=tmp_path, _env_file=None))
    with pytest.raises(ConfigError):
        Policy.load(path)
