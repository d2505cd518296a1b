"""The patient's mCODE resources: from the request's prefetch, else from its FHIR server.

CDS Hooks 2.0: a prefetch key that is absent was not fulfilled (the service must fetch it); a key
with value null means there is no data. A searchset Bundle with a `next` link, or a `total`
larger than its entries, is only a first page: the rest is fetched, never assumed empty. When
data is needed and the FHIR server cannot be reached, the hook answers 412 (PrefetchUnavailable).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx

from mbcnav.fhir._cds_models import HookRequest

TEMPLATES: dict[str, str] = {
    "patient": "Patient/{{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}",
    "medicationAdministrations": "MedicationAdministration?patient={{context.patientId}}",
}
MAX_PAGES = 50
TIMEOUT = httpx.Timeout(10.0, connect=3.0)
#: Comma-separated URL prefixes of FHIR servers this service may call (empty: any http(s) server).
ALLOWED_ENV = "MBCNAV_CDS_FHIR_SERVERS"


class PrefetchUnavailable(Exception):
    """Needed data was neither prefetched nor fetchable; the hook answers 412."""


def _fill(template: str, patient_id: str) -> str:
    return template.replace("{{context.patientId}}", patient_id)


def _allowed(base: str) -> bool:
    if not base.startswith(("http://", "https://")):
        return False
    prefixes = [p.strip() for p in os.environ.get(ALLOWED_ENV, "").split(",") if p.strip()]
    return not prefixes or any(base.startswith(p) for p in prefixes)


class _Server:
    def __init__(self, request: HookRequest) -> None:
        self.base = (request.fhirServer or "").rstrip("/")
        self.headers = {"Accept": "application/fhir+json"}
        auth = request.fhirAuthorization
        if auth is not None:
            self.headers["Authorization"] = f"{auth.token_type or 'Bearer'} {auth.access_token}"

    async def get(self, client: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
        """One GET; None for a 404 read (no such resource); PrefetchUnavailable for anything else."""
        if not self.base or not _allowed(self.base):
            raise PrefetchUnavailable("no usable fhirServer in the request to fetch missing prefetch data")
        full = url if url.startswith(("http://", "https://")) else f"{self.base}/{url}"
        if not full.startswith(self.base + "/"):
            # Never send the access token anywhere but the client's own FHIR server.
            raise PrefetchUnavailable(f"a paging link leaves the FHIR server ({full})")
        try:
            response = await client.get(full, headers=self.headers)
        except httpx.HTTPError as err:
            raise PrefetchUnavailable(f"FHIR server unreachable: {type(err).__name__}") from None
        if response.status_code == 404 and "?" not in url:
            return None
        if response.status_code != 200:
            raise PrefetchUnavailable(f"FHIR server answered {response.status_code} for {url}")
        try:
            data = response.json()
        except ValueError:
            raise PrefetchUnavailable(f"FHIR server sent no JSON for {url}") from None
        if not isinstance(data, dict):
            raise PrefetchUnavailable(f"FHIR server sent no resource for {url}")
        return data


def _next(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, Mapping) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


def _entries(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry") or []
            if isinstance(e, Mapping) and isinstance(e.get("resource"), dict)
            and e.get("search", {}).get("mode", "match") != "outcome"]


async def _complete(server: _Server, client: httpx.AsyncClient, value: Any, query: str) -> list[dict[str, Any]]:
    """Every resource of one prefetch value (or query), following paging to the end."""
    if value is None:
        return []
    if not isinstance(value, dict) or value.get("resourceType") == "OperationOutcome":
        fetched = await server.get(client, query)
        return [] if fetched is None else await _complete(server, client, fetched, query)
    if value.get("resourceType") != "Bundle":
        return [value]
    out = _entries(value)
    page, link = 1, _next(value)
    while link:
        page += 1
        if page > MAX_PAGES:
            raise PrefetchUnavailable(f"more than {MAX_PAGES} pages for {query}")
        bundle = await server.get(client, link)
        if bundle is None:
            raise PrefetchUnavailable(f"a paging link of {query} is gone")
        out += _entries(bundle)
        link = _next(bundle)
    total = value.get("total")
    if isinstance(total, int) and total > len(out):
        raise PrefetchUnavailable(f"{query}: {total} results announced, {len(out)} received")
    return out


async def gather(request: HookRequest, client: httpx.AsyncClient | None = None) -> dict[str, Any]:
    """One collection Bundle of the patient's resources (prefetched or fetched)."""
    patient_id = str(request.context.get("patientId") or "")
    if not patient_id:
        raise ValueError("context.patientId is required")
    prefetch = request.prefetch or {}
    server = _Server(request)
    owned = client is None
    client = client or httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
    try:
        resources: list[dict[str, Any]] = []
        for key, template in TEMPLATES.items():
            query = _fill(template, patient_id)
            if key in prefetch:
                value = prefetch[key]
            else:
                value = await server.get(client, query)
                if value is None:
                    continue
            if key == "patient" and isinstance(value, dict) and value.get("resourceType") == "Patient" \
                    and str(value.get("id", patient_id)) != patient_id:
                raise PrefetchUnavailable("the prefetched Patient is not context.patientId")
            resources += await _complete(server, client, value, query)
    finally:
        if owned:
            await client.aclose()
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
