"""Fixtures shared by the whole suite.

``each_json_backend``: the codec tests run once with the json module and once with orjson (the
optional fast backend, issue 12: "tests run both ways"). A module opts in with
``pytestmark = pytest.mark.usefixtures("each_json_backend")``. Module scope, so that
hypothesis tests may use it. Without orjson the orjson runs are skipped, except under
``CI=true``, where CI must really test both.

``KOASESSION_TEST_LOOP=uvloop`` runs every event loop of the run on uvloop, the loop of
``uvicorn[standard]`` (``make test-uvloop``: the engine and store tests).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from _services import unavailable
from koasession import codec

TEST_LOOP = os.environ.get("KOASESSION_TEST_LOOP", "asyncio")


def pytest_configure(config: pytest.Config) -> None:
    if TEST_LOOP == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise pytest.UsageError("KOASESSION_TEST_LOOP=uvloop needs uvloop installed") from None
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    elif TEST_LOOP != "asyncio":
        raise pytest.UsageError(
            f"KOASESSION_TEST_LOOP must be asyncio or uvloop, not {TEST_LOOP!r}"
        )


def pytest_report_header() -> list[str]:
    """Name the JSON backend the run uses (``make test``: orjson; ``make test-oldest``: std),
    and its event loop."""
    chosen = os.environ.get("KOASESSION_JSON", "auto")
    return [
        f"koasession JSON backend: {codec.json_backend()} (KOASESSION_JSON={chosen})",
        f"koasession test event loop: {TEST_LOOP}",
    ]


@pytest.fixture(scope="module", params=["std", "orjson"])
def each_json_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    try:
        previous = codec.set_json_backend(name)
    except ImportError as exc:
        unavailable(f"{exc} (the codec tests run with both JSON backends)")
    try:
        yield name
    finally:
        codec.set_json_backend(previous)
