"""The event loop the run asked for (``KOASESSION_TEST_LOOP``, tests/conftest.py) is the one the
tests get: ``make test-uvloop`` must not pass on the standard loop."""

from __future__ import annotations

import asyncio
import os

TEST_LOOP = os.environ.get("KOASESSION_TEST_LOOP", "asyncio")


async def test_the_chosen_event_loop_runs_the_async_tests() -> None:
    module = type(asyncio.get_running_loop()).__module__
    assert module.split(".")[0] == TEST_LOOP, module


def test_the_chosen_event_loop_runs_asyncio_run() -> None:
    async def module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert asyncio.run(module()).split(".")[0] == TEST_LOOP
