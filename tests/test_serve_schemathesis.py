"""A bounded, deterministic schemathesis run: the service answers every operation as its own OpenAPI spec says.

The app runs in a real uvicorn on 127.0.0.1 against the real MLflow server with a tiny registered generator. Positive and
negative (schema-violating) data, ``MAX_EXAMPLES`` generated cases each (Hypothesis derandomised, no example database), with
schemathesis's default checks (no 5xx, status codes, content types, headers and bodies as documented).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from facegen.attributes import ATTRIBUTE_VALUES
from facegen.serve.app import create_app
from tests.serve_fixtures import register_model, serve_settings, uvicorn_in_thread
from tests.serve_fixtures import tiny_generators as _tiny_generators_fixture

tiny_generators = _tiny_generators_fixture  # the session fixture, used by this module's tests

MAX_EXAMPLES = 80  # per generation mode, spread over the operations
TOKEN = "schemathesis-admin-token"


@pytest.fixture(scope="module")
def service_url(
    mlflow_server: str,
    tiny_generators,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    name = register_model(mlflow_server, tiny_generators, champion="1", prefix="schemathesis")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEGEN_TEST_ADMIN_TOKEN", TOKEN)
        app = create_app(serve_settings(mlflow_server, name, tmp_path_factory.mktemp("schemathesis")))
    with uvicorn_in_thread(app) as url:
        yield url


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_service_conforms_to_its_openapi_spec(service_url: str, mode: GenerationMode) -> None:
    # (schemathesis's lazy pytest integration, ``from_fixture``, breaks on pytest 9: its strategies are used directly.)
    schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json").include(method=["GET", "POST"])
    admin = {"Authorization": f"Bearer {TOKEN}"}
    seen: set[str] = set()

    @given(case=schema.as_strategy(mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case) -> None:
        seen.add(f"{case.method} {case.path}")
        case.call_and_validate(headers=admin if case.path.startswith("/admin") else None, timeout=30)

    check()
    assert {"GET /generate", "POST /generate", "POST /feedback"} <= seen, seen  # (80 cases reach all 7 operations)


def test_openapi_documents_bounds_and_docs_are_served(service_url: str) -> None:
    import httpx

    spec = httpx.get(f"{service_url}/openapi.json", timeout=10).json()
    parameters = {p["name"]: p["schema"] for p in spec["paths"]["/generate"]["get"]["parameters"]}
    assert parameters["size"]["enum"] == [16, 32, 64]
    assert parameters["truncation"]["minimum"] == 0 and parameters["truncation"]["maximum"] == 1
    for attribute, values in ATTRIBUTE_VALUES.items():  # the vocabulary, so clients see every allowed value
        assert parameters[attribute]["anyOf"][0]["enum"] == list(values)
    assert "409" in spec["paths"]["/generate"]["get"]["responses"]
    batch = spec["components"]["schemas"]["GenerateBatchRequest"]["properties"]
    assert batch["seeds"]["anyOf"][0]["maxItems"] == 8 and batch["count"]["anyOf"][0]["maximum"] == 8
    assert set(spec["paths"]) == {"/generate", "/healthz", "/readyz", "/metrics", "/feedback", "/admin/reload"}
    docs = httpx.get(f"{service_url}/docs", timeout=10)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
