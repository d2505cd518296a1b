"""schemathesis against the app's own OpenAPI document: no 5xx, no schema violation.

Runs in-process over ASGI with a bounded number of examples per operation. Two settings are
deliberate. A schema-valid body may still be refused with a documented 422: a drug name the
catalogue does not know, or a man with a menopausal status, cannot be expressed in JSON Schema
but is rejected by the engine (the problem document names the field). The CDS Hooks POST
services are left out because a request may name any fhirServer to fetch from; they are tested
with a local FHIR server in tests/fhir/test_cds_hooks.py.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from tests.api.client import APP

CONFIG = SchemathesisConfig.from_str("""
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "404", "422"]
""")
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG).exclude(
    path_regex=r"^/cds-services/\{service_id\}$")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    case.call_and_validate()
