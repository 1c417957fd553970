"""Fixtures shared by the whole suite.

``each_json_backend``: the codec tests run once with the json module and once with orjson (the
optional fast backend, issue 12: "tests run both ways"). A module opts in with
``pytestmark = pytest.mark.usefixtures("each_json_backend")``. Module scope, so that
hypothesis tests may use it. Without orjson the orjson runs are skipped, except under
``CI=true``, where CI must really test both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from koasession import codec


def pytest_report_header() -> str:
    """Name the JSON backend the run uses (``make test``: orjson; ``make test-oldest``: std)."""
    chosen = os.environ.get("KOASESSION_JSON", "auto")
    return f"koasession JSON backend: {codec.json_backend()} (KOASESSION_JSON={chosen})"


@pytest.fixture(scope="module", params=["std", "orjson"])
def each_json_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    try:
        previous = codec.set_json_backend(name)
    except ImportError as exc:
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(f"{exc} (CI=true: the codec tests must run with both backends)")
        pytest.skip(str(exc))
    try:
        yield name
    finally:
        codec.set_json_backend(previous)
