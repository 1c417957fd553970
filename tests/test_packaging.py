"""The distributions: ``python -m build`` makes a wheel and an sdist that install and work.

Built without isolation (``build``, ``twine`` and ``hatchling`` are in the dev extra), so the test
needs no network; the wheel is installed with ``--no-index`` (the core has no dependencies).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from _services import require_module
from koasession import __version__

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = {
    "redis",
    "postgres",
    "sqlite",
    "mysql",
    "crypto",
    "demo",
    "pydantic",
    "aiohttp",
    "orjson",
    "all",
}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=240, cwd=cwd
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(wheel, sdist) built from this checkout; the wheel is built from the sdist."""
    for module in ("build", "twine", "hatchling"):
        require_module(module)
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    wheels = list(out.glob("*.whl"))
    sdists = list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return wheels[0], sdists[0]


def test_twine_check_passes(dists: tuple[Path, Path]) -> None:
    out = _run(sys.executable, "-m", "twine", "check", "--strict", *dists)
    assert out.count("PASSED") == 2, out


def test_sdist_holds_the_sources_and_no_local_junk(dists: tuple[Path, Path]) -> None:
    with tarfile.open(dists[1]) as tar:
        names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    for wanted in ("README.md", "pyproject.toml", "src/koasession/py.typed", "docs/faq.md"):
        assert wanted in names
    assert "tests/test_docs.py" in names and "examples/starlette_app.py" in names
    junk = [
        n
        for n in names
        if any(
            part in (".venv", "node_modules", "__pycache__", ".node", ".git", "dist")
            for part in n.split("/")
        )
        or n.startswith("benchmarks/")
        or n.endswith((".pyc", ".db"))
    ]
    assert not junk, junk


def test_wheel_metadata_offers_the_extras(dists: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(dists[0]) as wheel:
        names = wheel.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(wheel.read(meta_name).decode())
    assert "koasession/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "benchmarks/"))]
    assert meta["Name"] == "koasession" and meta["Version"] == __version__
    assert set(meta.get_all("Provides-Extra") or []) >= EXTRAS
    requires = meta.get_all("Requires-Dist") or []
    assert any(
        r.startswith("redis") and "extra == 'redis'" in r.replace('"', "'") for r in requires
    )
    assert meta["Description-Content-Type"] == "text/markdown"


def test_wheel_installs_in_a_fresh_venv(dists: tuple[Path, Path], tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    # This interpreter's pip installs into the new environment (--python), offline.
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-index", dists[0])
    out = _run(python, "-c", "import koasession, koasession.stores; print(koasession.__version__)")
    assert out.strip() == __version__
    assert _run(env / "bin" / "koasession", "--version").strip() == f"koasession {__version__}"
    key = _run(env / "bin" / "koasession", "keygen").strip()
    assert len(key) == 43
    # A request through the middleware on the standard library alone (no extra installed).
    out = _run(python, "-c", _ROUND_TRIP, key)
    assert out.split() == ["std", "2", "koa.sess", "koa.sess.sig"]


# Two counter requests through the ASGI middleware, the second with the first one's cookies;
# prints the JSON backend, the count the second request saw plus one, and the cookie names.
_ROUND_TRIP = """
import asyncio, sys
from koasession import SessionMiddleware, codec

async def app(scope, receive, send):
    session = scope["session"]
    session["views"] = session.get("views", 0) + 1
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})

async def request(middleware, cookie):
    sent = []
    async def send(message):
        sent.append(message)
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    headers = [(b"cookie", cookie.encode())] if cookie else []
    scope = {"type": "http", "method": "GET", "path": "/", "scheme": "http", "headers": headers}
    await middleware(scope, receive, send)
    return [v.decode() for k, v in sent[0]["headers"] if k == b"set-cookie"]

async def main():
    middleware = SessionMiddleware(app, keys=[sys.argv[1]])
    first = await request(middleware, None)
    cookie = "; ".join(line.split(";")[0] for line in first)
    second = await request(middleware, cookie)
    value = second[0].split(";")[0].split("=", 1)[1]
    names = [line.split("=")[0] for line in second]
    print(codec.json_backend(), codec.decode(value)["views"], *names)

asyncio.run(main())
"""
