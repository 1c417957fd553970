"""The typed options: SessionOptionsDict mirrors SessionOptions, and type checkers enforce it.

The snippets are checked by the same mypy (--strict) and pyright the project uses, so the test
shows what a user's type checker reports for ``add_middleware(SessionMiddleware, ...)``.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import get_type_hints

import pytest

from koasession.options import SessionOptions, SessionOptionsDict

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
KEY = "NHys6S2KLm3FJyxPpcSVNaqd2IN4lLDtqrWcDyrtxBY"

pytestmark = pytest.mark.slow

HEADER = """\
from __future__ import annotations

from starlette.applications import Starlette

from koasession import MemoryStore, SessionMiddleware

app = Starlette()
"""

SNIPPETS = {
    "good_options": f"""
from datetime import timedelta

from quart import Quart

from koasession.integrations.litestar import LitestarSessionMiddleware, session_middleware
from koasession.integrations.quart import install
from koasession.koa import koa_middleware
from koasession.protocols import HookContext


def make_id(ctx: HookContext) -> str:
    return "id-" + str(len(ctx.state))


app.add_middleware(
    SessionMiddleware,
    keys=["{KEY}"],
    max_age=timedelta(hours=1),
    same_site="strict",
    store=MemoryStore(),
    genid=make_id,
    on_event=lambda name, payload: None,
)
SessionMiddleware(app, ["{KEY}"], max_age="session", idle_timeout=60)
install(Quart(__name__), keys=["{KEY}"], rolling=True)
session_middleware(keys=["{KEY}"], priority="high")
LitestarSessionMiddleware(app, ["{KEY}"], scope_key="s")
koa_middleware(app, ["{KEY}"], {{"maxAge": 1000}}, encrypt=True)
""",
    "good_aiohttp": f"""
from aiohttp import web

from koasession.aiohttp import SessionMiddleware as AiohttpSessionMiddleware
from koasession.aiohttp import setup

setup(web.Application(), keys=["{KEY}"], store=MemoryStore(), same_site="strict")
web.Application(middlewares=[AiohttpSessionMiddleware(keys=["{KEY}"], rolling=True)])
""",
    "good_csrf": f"""
from fastapi import FastAPI
from litestar import Litestar
from quart import Quart

from koasession import CSRFMiddleware
from koasession.integrations.litestar import LitestarSessionMiddleware

SessionMiddleware(CSRFMiddleware(app), ["{KEY}"])
SessionMiddleware(CSRFMiddleware(FastAPI()), ["{KEY}"])
LitestarSessionMiddleware(CSRFMiddleware(Litestar([])), ["{KEY}"])
CSRFMiddleware(Quart(__name__).asgi_app)
""",
    "stores_conform": """
from koasession import Session, SessionContext
from koasession.protocols import ClosableStore, HookContext, SessionView, Store
from koasession.stores import MemoryStore, PostgresStore, RedisStore, SQLiteStore
from koasession.stores.mysql import MySQLStore


def as_store(
    memory: MemoryStore,
    redis: RedisStore,
    postgres: PostgresStore,
    sqlite: SQLiteStore,
    mysql: MySQLStore,
) -> list[ClosableStore]:
    return [memory, redis, postgres, sqlite, mysql]


def as_view(session: Session, ctx: SessionContext) -> tuple[SessionView, HookContext]:
    return session, ctx


def plain(store: Store) -> Store:
    return store
""",
    "bad_store_signature": f"""
class NoCtxStore:
    def get(self, key: str, max_age: float | None) -> None:
        return None

    def set(self, key: str, data: dict[str, object], max_age: float) -> None:
        return None

    def destroy(self, key: str) -> None:
        return None


app.add_middleware(SessionMiddleware, keys=["{KEY}"], store=NoCtxStore())
""",
    "bad_koa_name": f"""
app.add_middleware(SessionMiddleware, keys=["{KEY}"], maxAge=60)
""",
    "bad_same_site": f"""
app.add_middleware(SessionMiddleware, keys=["{KEY}"], same_site="sometimes")
""",
    "bad_store": f"""
app.add_middleware(SessionMiddleware, keys=["{KEY}"], store=object())
""",
    "bad_quart": f"""
from quart import Quart

from koasession.integrations.quart import install

install(Quart(__name__), keys=["{KEY}"], maxAge=60)
""",
    "bad_aiohttp": f"""
from aiohttp import web

from koasession.aiohttp import setup

setup(web.Application(), keys=["{KEY}"], maxAge=60)
""",
    "bad_koa_middleware": f"""
from koasession.koa import koa_middleware

koa_middleware(app, ["{KEY}"], None, same_site="sometimes")
""",
}


def _options_roundtrip() -> str:
    """A function that passes every stored option value as typed input: it type-checks only if
    each dataclass field's type is assignable to the TypedDict's type for the same key."""
    names = [field.name for field in dataclasses.fields(SessionOptions)]
    items = "".join(f"        {name!r}: o.{name},\n" for name in names)
    return (
        "from koasession.options import SessionOptions, SessionOptionsDict\n\n\n"
        "def roundtrip(o: SessionOptions) -> SessionOptionsDict:\n"
        f"    return {{\n{items}    }}\n"
    )


@pytest.fixture(scope="module")
def snippets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("typed_options")
    paths = {}
    for name, body in SNIPPETS.items():
        paths[name] = folder / f"{name}.py"
        paths[name].write_text(HEADER + textwrap.dedent(body))
    paths["roundtrip"] = folder / "roundtrip.py"
    paths["roundtrip"].write_text("from __future__ import annotations\n\n" + _options_roundtrip())
    return paths


def _mypy_errors(paths: dict[str, Path]) -> dict[str, list[str]]:
    # A private cache: mypy's shared one may hold these module names from another run.
    cache = next(iter(paths.values())).parent / ".mypy_cache"
    command = [str(BIN / "mypy"), "--strict", "--no-error-summary", "--cache-dir", str(cache)]
    result = subprocess.run(
        [*command, *map(str, paths.values())],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    errors: dict[str, list[str]] = {name: [] for name in paths}
    for line in result.stdout.splitlines():
        for name, path in paths.items():
            if line.startswith(f"{path}:") and ": error:" in line:
                errors[name].append(line)
    return errors


def _pyright_errors(paths: dict[str, Path]) -> dict[str, list[str]]:
    result = subprocess.run(
        [
            str(BIN / "pyright"),
            "--outputjson",
            "--pythonpath",
            sys.executable,
            *map(str, paths.values()),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    report = json.loads(result.stdout)
    errors: dict[str, list[str]] = {name: [] for name in paths}
    by_file = {str(path): name for name, path in paths.items()}
    for diagnostic in report["generalDiagnostics"]:
        if diagnostic["severity"] == "error" and diagnostic["file"] in by_file:
            errors[by_file[diagnostic["file"]]].append(diagnostic["message"])
    return errors


@pytest.fixture(scope="module")
def mypy_errors(snippets: dict[str, Path]) -> dict[str, list[str]]:
    return _mypy_errors(snippets)


@pytest.fixture(scope="module")
def pyright_errors(snippets: dict[str, Path]) -> dict[str, list[str]]:
    return _pyright_errors(snippets)


def test_typed_dict_and_dataclass_declare_the_same_options() -> None:
    fields = {field.name for field in dataclasses.fields(SessionOptions)}
    assert set(get_type_hints(SessionOptionsDict)) == fields
    assert SessionOptionsDict.__optional_keys__ == fields


@pytest.mark.parametrize("checker", ["mypy", "pyright"])
@pytest.mark.parametrize(
    "name", ["good_options", "good_aiohttp", "good_csrf", "stores_conform", "roundtrip"]
)
def test_good_options_type_check(
    checker: str,
    name: str,
    mypy_errors: dict[str, list[str]],
    pyright_errors: dict[str, list[str]],
) -> None:
    errors = mypy_errors if checker == "mypy" else pyright_errors
    assert errors[name] == []


@pytest.mark.parametrize("checker", ["mypy", "pyright"])
@pytest.mark.parametrize(
    ("name", "mentions"),
    [
        ("bad_koa_name", "maxAge"),
        ("bad_same_site", "sometimes"),
        ("bad_store", "store"),
        ("bad_store_signature", "NoCtxStore"),
        ("bad_quart", "maxAge"),
        ("bad_aiohttp", "maxAge"),
        ("bad_koa_middleware", "sometimes"),
    ],
)
def test_bad_options_are_type_errors(
    checker: str,
    name: str,
    mentions: str,
    mypy_errors: dict[str, list[str]],
    pyright_errors: dict[str, list[str]],
) -> None:
    errors = mypy_errors if checker == "mypy" else pyright_errors
    assert errors[name], f"{checker} accepted {name}"
    assert any(mentions in error for error in errors[name]), errors[name]
