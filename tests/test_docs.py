"""Every ```python block in README.md and docs/*.md runs.

The blocks of one file share a namespace, in order, as a reader reads them (a later block may use
what an earlier one imported or defined). A block that assigns ``app`` is then served through
Starlette's ``TestClient`` (lifespan included; aiohttp's test client for an ``aiohttp.web``
app): by default one ``GET /`` that must not fail with a 5xx; an HTML comment right after the
block, ``<!-- requests: GET / => 1 views | GET / => 2 views -->``, lists requests made in turn
by one client (cookies kept) and a text each response body must contain. Comment lines right
after a ``print(...)`` line are the output it must show
(``...`` at the end: a prefix).

A block that cannot run on its own says so in an HTML comment right before it:
``<!-- not-run: reason -->``. A block a reader copies alone (a framework's section, read by
that framework's users only) says ``<!-- standalone -->`` there instead, and must then name
nothing it does not import or define itself (ruff's undefined-name check). Blocks naming a
Redis or PostgreSQL URL use the real servers (``REDIS_URL`` / ``DATABASE_URL`` replace the
documented defaults); without the server they are skipped with the reason, except under
``CI=true``, where they fail.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import os
import re
import secrets
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from _services import DATABASE_URL, REDIS_URL, require_postgres, require_redis

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REDIS_DEFAULT = "redis://127.0.0.1:6379"
POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
#: Deliberately unrun blocks are the exception: more than this many means the docs drifted.
MAX_NOT_RUN = 3

_FENCE = re.compile(r"^(`{3,})(.*)$")
_NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(\S.*?)\s*-->$")
_REQUESTS = re.compile(r"^<!--\s*requests:\s*(.*?)\s*-->$")
_STANDALONE = "<!-- standalone -->"


@dataclass
class Block:
    """One fenced code block of a markdown file."""

    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    code: str
    not_run: str | None
    requests: list[tuple[str, str, str]]
    standalone: bool = False

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, info = match.group(1), match.group(2).strip()
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        after = next((ln.strip() for ln in lines[end + 1 :] if ln.strip()), "")
        not_run = _NOT_RUN.match(before)
        wanted = _REQUESTS.match(after)
        blocks.append(
            Block(
                path=path,
                line=i + 1,
                info=info,
                code="\n".join(lines[i + 1 : end]) + "\n",
                not_run=not_run.group(1) if not_run else None,
                requests=_parse_requests(wanted.group(1)) if wanted else [],
                standalone=before == _STANDALONE,
            )
        )
        i = end + 1
    return blocks


def _parse_requests(text: str) -> list[tuple[str, str, str]]:
    out = []
    for part in text.split("|"):
        request, _, expected = part.partition("=>")
        method, _, target = request.strip().partition(" ")
        out.append((method.upper(), target.strip(), expected.strip()))
    return out


ALL_BLOCKS = [block for path in DOCS for block in _blocks(path)]
PYTHON_BLOCKS = [block for block in ALL_BLOCKS if block.info == "python"]


def _require_servers(code: str) -> None:
    if REDIS_DEFAULT in code:
        require_redis()
    if "postgresql://" in code or "postgres://" in code:
        require_postgres()


def _source(block: Block) -> str:
    return block.code.replace(REDIS_DEFAULT, REDIS_URL).replace(POSTGRES_DEFAULT, DATABASE_URL)


def _assigns_app(code: str) -> bool:
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "app" for t in node.targets
        ):
            return True
    return False


def _expected_output(code: str) -> list[str]:
    """The comment lines right after the last ``print(`` line."""
    lines = code.splitlines()
    last = max((i for i, ln in enumerate(lines) if "print(" in ln), default=None)
    if last is None:
        return []
    expected = []
    for line in lines[last + 1 :]:
        if not line.startswith("# "):
            break
        expected.append(line[2:])
    return expected


def _run(block: Block, namespace: dict[str, Any]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_source(block), block.id, "exec"), namespace)
    return out.getvalue()


def _serve(block: Block, app: Any, namespace: dict[str, Any]) -> None:
    from starlette.testclient import TestClient

    requests = block.requests or [("GET", "/", "")]
    if type(app).__module__.startswith("aiohttp."):
        session_id = asyncio.run(_serve_aiohttp(app, requests))
    else:
        with TestClient(app) as client:
            for method, target, expected in requests:
                response = client.request(method, target)
                assert response.status_code < 500, f"{method} {target}: {response.status_code}"
                assert expected in response.text, f"{method} {target}: {response.text[:200]!r}"
            session_id = client.cookies.get("koa.sess")
    store = namespace.get("store")
    if session_id and type(store).__name__ == "RedisStore":
        # The documented prefix may be shared with real users of this Redis: delete only the
        # entry this test wrote.
        import redis

        client_ = redis.Redis.from_url(REDIS_URL)
        try:
            client_.delete(f"{store.key_prefix}{session_id}")
        finally:
            client_.close()


async def _serve_aiohttp(app: Any, requests: list[tuple[str, str, str]]) -> str | None:
    """The same requests for an ``aiohttp.web.Application``, through aiohttp's test client."""
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(app)) as client:
        for method, target, expected in requests:
            response = await client.request(method, target)
            text = await response.text()
            assert response.status < 500, f"{method} {target}: {response.status}"
            assert expected in text, f"{method} {target}: {text[:200]!r}"
        cookies = {cookie.key: cookie.value for cookie in client.session.cookie_jar}
    return cookies.get("koa.sess")


@pytest.fixture(autouse=True)
def _app_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOASESSION_KEY", secrets.token_urlsafe(32))


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_python_block_runs(block: Block) -> None:
    if block.not_run:
        pytest.skip(f"marked not-run: {block.not_run}")
    _require_servers(block.code)
    # A real module: frameworks (Litestar) resolve annotations through sys.modules.
    module = types.ModuleType(f"_docs_{block.path.stem}_{block.line}".replace("-", "_"))
    sys.modules[module.__name__] = module
    try:
        _check_block(block, module.__dict__)
    finally:
        del sys.modules[module.__name__]


def _check_block(block: Block, namespace: dict[str, Any]) -> None:
    for earlier in PYTHON_BLOCKS:
        if earlier.path != block.path or earlier.line >= block.line or earlier.not_run:
            continue
        _run(earlier, namespace)
    namespace.pop("app", None)
    output = _run(block, namespace)
    expected_lines = _expected_output(block.code)
    shown_lines = output.splitlines()
    assert len(shown_lines) >= len(expected_lines), output
    for expected, shown in zip(expected_lines, shown_lines, strict=False):
        if expected.endswith("..."):
            assert shown.startswith(expected[:-3]), (expected, output)
        else:
            assert shown == expected, (expected, output)
    if _assigns_app(block.code):
        _serve(block, namespace["app"], namespace)
    else:
        assert not block.requests, "requests listed after a block that defines no app"


def test_blocks_found() -> None:
    assert len(PYTHON_BLOCKS) >= 10
    assert any(b.path.name == "README.md" and "Quickstart" not in b.code for b in PYTHON_BLOCKS)


STANDALONE = [b for b in PYTHON_BLOCKS if b.standalone]


@pytest.mark.parametrize("block", STANDALONE, ids=[b.id for b in STANDALONE])
def test_standalone_block_names_nothing_undefined(block: Block, tmp_path: Path) -> None:
    """A framework section's block runs as copied alone, without the README's earlier blocks."""
    source = tmp_path / "block.py"
    source.write_text(block.code, encoding="utf-8")
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run(
        [
            str(ruff),
            "check",
            "--isolated",
            "--select",
            "F821",
            "--output-format",
            "concise",
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_framework_sections_have_standalone_blocks() -> None:
    assert len(STANDALONE) >= 5, [b.id for b in STANDALONE]


def test_not_run_blocks_are_few_and_explained() -> None:
    not_run = [b for b in PYTHON_BLOCKS if b.not_run]
    assert len(not_run) <= MAX_NOT_RUN, [b.id for b in not_run]
    for block in ALL_BLOCKS:
        if block.not_run:
            assert block.info == "python", f"{block.id}: not-run on a {block.info!r} block"


def test_every_block_says_its_language() -> None:
    """An untagged or misspelt fence (```py, ```Python) would escape the run above silently."""
    for block in ALL_BLOCKS:
        assert block.info in ("python", "sh", "js", "text"), f"{block.id}: ```{block.info}"


def test_no_placeholder_keys_in_docs() -> None:
    """Keys in the docs come from the environment, never from a literal someone could copy."""
    for path in [*DOCS, *sorted((ROOT / "examples").glob("*.py"))]:
        text = path.read_text(encoding="utf-8")
        assert "a random secret of 32 bytes" not in text.replace("\n", " "), path
        assert 'keys=["' not in text and "keys=['" not in text, path


def test_no_machine_paths_in_docs() -> None:
    """Committed pages (benchmarks.md is generated) name repository paths, not this machine's."""
    for path in DOCS:
        found = re.findall(r"(?<![\w.])/(?:work|home|root|tmp|Users)/\S+", path.read_text("utf-8"))
        assert not found, (path, found)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quickstart_served_by_uvicorn(tmp_path: Path) -> None:
    """The Quickstart saved as app.py and run as the README says, over real HTTP."""
    import socket
    import subprocess
    import time

    import httpx

    quickstart = next(b for b in PYTHON_BLOCKS if b.path.name == "README.md")
    assert "Starlette(routes=" in quickstart.code
    (tmp_path / "app.py").write_text(quickstart.code, encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "KOASESSION_KEY": secrets.token_urlsafe(32)}
    command = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while True:
                assert proc.poll() is None, proc.communicate()[0]
                try:
                    first = client.get("/")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "uvicorn did not start"
                    time.sleep(0.1)
            assert first.text == "1 views"
            assert client.get("/").text == "2 views"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
