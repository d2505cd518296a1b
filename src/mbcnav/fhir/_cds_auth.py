"""Who may call the CDS service: the CDS client's signed JWT, checked as CDS Hooks 2.0 says.

Every call to discovery, a service or feedback carries `Authorization: Bearer <JWT>`, signed with
the client's private key (never `none`, never a shared-secret HMAC). The service trusts only the
issuers listed in the file named by MBCNAV_CDS_CLIENTS, each with its JWK Set pinned inline or
fetched from its URL (a `jku` in the token header must be that URL: a token cannot point at keys
of its own choosing).
Checked: signature (key by `kid`), `iss`, `aud` = the URL of the endpoint called, `exp`, `iat`,
and `jti` once only (replays are refused until the token expires, in every server process when
the web app's database keeps the record: `_cds_store`).

Without MBCNAV_CDS_CLIENTS the service runs open, for a local sandbox; a warning says so once.

    {"audience_base": "https://cds.example.org",          # optional: public URL behind a proxy
     "clients": [{"iss": "https://ehr.example.org/", "jwks_url": "https://ehr.example.org/jwks"},
                 {"iss": "https://sandbox.example.org", "jwks": {"keys": [...]}}]}
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mbcnav.fhir._cds_store import TokenLedger

log = logging.getLogger("mbcnav.cds")

CLIENTS_ENV = "MBCNAV_CDS_CLIENTS"
# Asymmetric algorithms only (the spec forbids `none` and HMAC); ES384 and RS384 are its recommendation.
ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"})
LEEWAY_SECONDS = 60
MAX_LIFETIME_SECONDS = 3600      # a longer-lived token would have to be remembered longer against replay
JWKS_TTL_SECONDS = 600
JWKS_REFRESH_SECONDS = 30        # at most this often when a token names a kid we have not seen
TIMEOUT = httpx.Timeout(5.0, connect=3.0)


class Denied(Exception):
    """The call is not authenticated; the message says why (it names no secret)."""


class ConfigError(ValueError):
    """MBCNAV_CDS_CLIENTS names a file that is not a valid client list."""


@dataclass
class Client:
    iss: str
    jwks_url: str | None = None
    jwks: dict[str, Any] | None = None


@dataclass
class Policy:
    clients: dict[str, Client]
    audience_base: str | None = None
    _fetched: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    ledger: TokenLedger = field(default_factory=lambda: MemoryTokenLedger())   # this process's own record

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{CLIENTS_ENV}: cannot read {path}: {err}") from None
        if not isinstance(data, dict) or not isinstance(data.get("clients"), list) or not data["clients"]:
            raise ConfigError(f"{CLIENTS_ENV}: {path} must hold an object with a non-empty 'clients' list")
        clients: dict[str, Client] = {}
        for i, entry in enumerate(data["clients"]):
            where = f"{CLIENTS_ENV}: clients[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("iss"), str) or not entry["iss"]:
                raise ConfigError(f"{where}: 'iss' (the client's issuer URI) is required")
            url, keys = entry.get("jwks_url"), entry.get("jwks")
            if url is None and keys is None:
                raise ConfigError(f"{where}: give 'jwks_url' (fetched) or 'jwks' (pinned keys), or both")
            if url is not None and not (isinstance(url, str) and url.startswith(("https://", "http://"))):
                raise ConfigError(f"{where}: 'jwks_url' must be an http(s) URL")
            if keys is not None and not (isinstance(keys, dict) and isinstance(keys.get("keys"), list)):
                raise ConfigError(f"{where}: 'jwks' must be a JWK Set ({{\"keys\": [...]}})")
            clients[entry["iss"]] = Client(entry["iss"], url, keys)
        base = data.get("audience_base")
        if base is not None and not isinstance(base, str):
            raise ConfigError(f"{CLIENTS_ENV}: 'audience_base' must be a URL")
        return cls(clients, base.rstrip("/") if base else None)

    # -- the check -------------------------------------------------------------------------------

    async def verify(self, authorization: str | None, endpoint: str,
                     ledger: TokenLedger | None = None) -> dict[str, Any]:
        """The token's claims when `authorization` authenticates a call to `endpoint` (its full URL).

        `ledger` records the `jti`s already used (default: this process's own memory; the web app
        passes its database, shared by every worker process).
        """
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Denied("a CDS client must send its signed JWT as 'Authorization: Bearer <token>'")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Denied("the bearer token is not a JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise Denied(f"JWT alg {alg!r} is not accepted; use an asymmetric algorithm such as ES384 or RS384")
        if header.get("typ", "JWT") != "JWT":
            raise Denied("JWT typ must be 'JWT'")
        if not isinstance(kid, str) or not kid:
            raise Denied("JWT header must name its key ('kid')")
        client = self.clients.get(str(unverified.get("iss")))
        if client is None:
            raise Denied("JWT issuer is not a trusted CDS client")
        jku = header.get("jku")
        if jku is not None and jku != client.jwks_url:
            raise Denied("JWT 'jku' is not the key set registered for this client")
        key = await self._key(client, kid, str(alg))
        audience = [endpoint, endpoint + "/"] if not endpoint.endswith("/") else [endpoint, endpoint.rstrip("/")]
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[str(alg)], audience=audience, issuer=client.iss, leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]})
        except jwt.ExpiredSignatureError:
            raise Denied("JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise Denied(f"JWT 'aud' must be the URL of the endpoint called ({endpoint})") from None
        except jwt.MissingRequiredClaimError as err:
            raise Denied(f"JWT is missing the '{err.claim}' claim") from None
        except jwt.PyJWTError as err:
            raise Denied(f"JWT rejected: {type(err).__name__}") from None
        now = time.time()
        if float(claims["exp"]) - now > MAX_LIFETIME_SECONDS:
            raise Denied(f"JWT expires too far ahead (at most {MAX_LIFETIME_SECONDS // 60} minutes)")
        record = ledger or self.ledger
        until = float(claims["exp"]) + LEEWAY_SECONDS
        if not await run_in_threadpool(record.first_use, client.iss, str(claims["jti"]), until):
            raise Denied("JWT 'jti' was already used (replay)")
        return claims

    async def _key(self, client: Client, kid: str, alg: str) -> Any:
        keys = client.jwks if client.jwks is not None else await self._fetch(client, refresh=False)
        found = _find(keys, kid)
        if found is None and client.jwks_url is not None:
            keys = await self._fetch(client, refresh=True)
            found = _find(keys, kid)
        if found is None:
            raise Denied("JWT 'kid' is not in the client's key set")
        try:
            return jwt.PyJWK(found, algorithm=alg).key
        except jwt.PyJWTError:
            raise Denied("the client's key does not fit the JWT 'alg'") from None

    async def _fetch(self, client: Client, refresh: bool) -> dict[str, Any]:
        assert client.jwks_url is not None
        now = time.monotonic()
        cached = self._fetched.get(client.jwks_url)
        if cached is not None:
            age = now - cached[0]
            if age < (JWKS_REFRESH_SECONDS if refresh else JWKS_TTL_SECONDS):
                return cached[1]
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http:
                response = await http.get(client.jwks_url, headers={"Accept": "application/json"})
            keys = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            keys = None
        if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
            if cached is not None:
                return cached[1]     # keep using the last good set while the client's URL is down
            raise Denied("the client's key set could not be fetched")
        self._fetched[client.jwks_url] = (now, keys)
        return keys


class MemoryTokenLedger:
    """The `jti`s this process has accepted, until they expire (enough for a single process)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def first_use(self, issuer: str, jti: str, until: float) -> bool:
        now = time.time()
        with self._lock:
            for seen, expiry in list(self._seen.items()):
                if expiry < now:
                    del self._seen[seen]
            if (issuer, jti) in self._seen:
                return False
            self._seen[issuer, jti] = until
            return True


def _find(keys: dict[str, Any], kid: str) -> dict[str, Any] | None:
    return next((k for k in keys.get("keys", []) if isinstance(k, dict) and k.get("kid") == kid), None)


_POLICIES: dict[str, Policy] = {}
_WARNED: list[bool] = []


def policy() -> Policy | None:
    """The policy for MBCNAV_CDS_CLIENTS (loaded once per file name), or None when unset."""
    name = os.environ.get(CLIENTS_ENV, "").strip()
    if not name:
        if not _WARNED:
            _WARNED.append(True)
            log.warning("CDS Hooks calls are not authenticated: set %s to the trusted clients file", CLIENTS_ENV)
        return None
    found = _POLICIES.get(name)
    if found is None:
        found = _POLICIES[name] = Policy.load(Path(name))
    return found


async def denial(request: Request) -> JSONResponse | None:
    """None when the call may proceed; else the 401 answer (CDS Hooks errors are JSON)."""
    current = policy()
    if current is None:
        return None
    base = current.audience_base or f"{request.url.scheme}://{request.url.netloc}"
    try:
        ledger = getattr(request.app.state, "cds_token_ledger", None)
        await current.verify(request.headers.get("authorization"), base + request.url.path, ledger)
    except Denied as err:
        return JSONResponse({"error": str(err)}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return None
