"""The ``Run:`` commands of the examples, run as documented: subprocesses, real HTTP (httpx).

Every ``examples/*.py`` says in its docstring how to run it (``Run: ``uvicorn
examples.plain_asgi:app`` (set ``KOASESSION_KEY``, ...)``); the commands are read from there
(the code literals of the ``Run:`` sentence, outside parentheses), so a new example or a changed
command is tested as it is written, and an example without a ``Run:`` line fails. Each command
runs from the repository root with the venv's ``bin`` first on ``PATH`` (``python``,
``uvicorn``, ``hypercorn``, ``flask`` are the venv's) and a fresh ``koasession keygen`` key in
``KOASESSION_KEY``; the test adds only the options of the tool that pick a free loopback port
(and starts again on another port when the bind fails: the port is free when chosen, not
necessarily when the server binds it).

Then one client (cookies kept) counts two views, logs in where the example has a login route and
checks the session across ``regenerate()``, and the server is stopped with SIGTERM sent to its
process group: it must exit and print no traceback, "Task was destroyed", "Event loop is
closed" or ResourceWarning (``PYTHONWARNINGS=default``). A missing tool or framework skips the
test, except under ``CI=true``, where it fails (tests/e2e/test_other_servers.py).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from _services import unavailable

from .test_other_servers import Server, _free_port, assert_clean, session_cookies

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups and signals"),
]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
#: The venv's bin directory: ``python``, ``uvicorn``, ``hypercorn``, ``flask``, ``koasession``.
BIN = Path(sys.executable).parent

#: The ``Run:`` paragraph of a docstring (up to a blank line or the end).
RUN_PARAGRAPH = re.compile(r"^Run:(?P<text>.*?)(?:\n[ \t]*\n|\Z)", re.MULTILINE | re.DOTALL)
#: Its tokens: a ``literal``, a parenthesis, or the full stop that ends the sentence.
RUN_TOKENS = re.compile(
    r"``(?P<literal>.+?)``|(?P<open>\()|(?P<close>\))|(?P<end>\.(?=\s|\Z))", re.DOTALL
)

LOOPBACK = "127.0.0.1"


def documented_commands(docstring: str) -> list[str]:
    """The commands of the ``Run:`` sentence: its code literals outside parentheses
    (``(set ``KOASESSION_KEY``, ...)`` is not a command), up to the sentence's full stop."""
    paragraph = RUN_PARAGRAPH.search(docstring)
    if paragraph is None:
        return []
    commands: list[str] = []
    depth = 0
    for token in RUN_TOKENS.finditer(paragraph["text"]):
        if token["literal"] is not None:
            if depth == 0:
                commands.append(" ".join(token["literal"].split()))
        elif token["open"]:
            depth += 1
        elif token["close"]:
            depth -= 1
        elif depth == 0:
            break
    return commands


def docstring_of(example: Path) -> str:
    return ast.get_docstring(ast.parse(example.read_text())) or ""


def tool_of(argv: list[str]) -> str:
    """``uvicorn``, ``hypercorn``, ``flask``, ``python -m aiohttp.web``, ``python FILE``..."""
    if argv[0] == "python" and len(argv) > 2 and argv[1] == "-m":
        return f"python -m {argv[2]}"
    if argv[0] == "python":
        return f"python {argv[1]}"
    return argv[0]


def port_options(tool: str, port: int) -> list[str]:
    """The options that make ``tool`` serve on ``LOOPBACK:port``, added after the command."""
    options = {
        "uvicorn": ["--port", str(port), "--host", LOOPBACK],
        "hypercorn": ["--bind", f"{LOOPBACK}:{port}"],
        # `flask --app X run`: the options of the run command, after it
        "flask": ["--port", str(port), "--host", LOOPBACK],
        # python -m aiohttp.web, and the example's own script, which takes the same options
        "python -m aiohttp.web": ["-H", LOOPBACK, "-P", str(port)],
        "python examples/aiohttp_app.py": ["-H", LOOPBACK, "-P", str(port)],
    }
    if tool not in options:
        pytest.fail(f"no known option picks the port of {tool!r}: add it to port_options()")
    return options[tool]


#: The exit status after SIGTERM: 0 for the servers that shut down and return; uvicorn shuts
#: down, then raises the signal it caught again (so it dies of it); the Flask development server
#: (Werkzeug) does not handle SIGTERM and dies of it at once.
EXIT_STATUS = {"uvicorn": -signal.SIGTERM, "flask": -signal.SIGTERM}
#: What a server prints at the end of a graceful shutdown, where it prints something.
SHUTDOWN_LINE = {
    "uvicorn": "Finished server process",
    "python -m aiohttp.web": "Stopped",
}

#: Examples whose login replaces the session data (Litestar's ``request.set_session({...})``,
#: koa's ``ctx.session = {user}``) instead of adding the user to it.
LOGIN_REPLACES_DATA = {"litestar_app"}


def cases() -> Iterator[Any]:
    for example in EXAMPLES:
        commands = documented_commands(docstring_of(example))
        if not commands:
            yield pytest.param(example, None, id=f"{example.stem}-no-run-line")
        for command in commands:
            tool = tool_of(shlex.split(command))
            name = tool.rsplit(" ", 1)[-1].rsplit("/", 1)[-1]
            yield pytest.param(example, command, id=f"{example.stem}-{name}")


def require_imports(example: Path) -> None:
    """Skip (fail under CI) when a top-level import of the example is not installed."""
    for node in ast.parse(example.read_text()).body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top != "__future__" and importlib.util.find_spec(top) is None:
                unavailable(f"{top} is not installed (imported by examples/{example.name})")


def environment() -> dict[str, str]:
    env = {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")])}
    env.pop("PYTHONPATH", None)  # the command alone must find the example
    keygen = shutil.which("koasession", path=env["PATH"])
    assert keygen, f"koasession's command is not in {BIN}"
    key = subprocess.run([keygen, "keygen"], capture_output=True, text=True, check=True)
    env["KOASESSION_KEY"] = key.stdout.strip()
    assert len(env["KOASESSION_KEY"]) >= 43, key
    env["PYTHONWARNINGS"] = "default"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def resolve(argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` with its program found on ``env``'s PATH (skipped when missing)."""
    tool = tool_of(argv)
    if tool.startswith("python -m "):
        module = tool.removeprefix("python -m ")
        if importlib.util.find_spec(module.split(".")[0]) is None:
            unavailable(f"{module} is not installed (pip install -e '.[dev]')")
    program = shutil.which(argv[0], path=env["PATH"])
    if program is None:
        unavailable(f"{argv[0]} is not on PATH (pip install -e '.[dev]')")
    assert program is not None  # unavailable() skips or fails
    return [program, *argv[1:]]


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """The servers a test started; their process groups are killed after it."""
    started: list[Server] = []
    yield started
    for server in started:
        server.kill_group()


def start(command: str, servers: list[Server], log_dir: Path) -> Server:
    """Run ``command`` from the repository root on a free loopback port; once it answers."""
    argv = shlex.split(command)
    tool = tool_of(argv)
    env = environment()
    program = resolve(argv, env)
    for attempt in range(5):
        port = _free_port()
        log = log_dir / f"server.{attempt}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*program, *port_options(tool, port)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(f"http://{LOOPBACK}:{port}", proc, log, command)
        servers.append(server)
        deadline = time.monotonic() + 30
        while proc.poll() is None:
            try:
                with httpx.Client(timeout=1) as probe:
                    probe.get(server.url + "/")
                return server
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"`{command}` did not answer:\n{server.text()}") from None
                time.sleep(0.1)
        if "already in use" not in server.text().lower():
            raise AssertionError(
                f"`{command}` exited with status {proc.returncode}:\n{server.text()}"
            )
        # The port was taken between _free_port() and the server's bind: another port.
    raise AssertionError(f"`{command}` found no free port:\n{server.text()}")


def check_views(http: httpx.Client, views: int, user: str | None) -> dict[str, Any]:
    """``GET /``: the counter at ``views``, for ``user``; the response sets the session cookie."""
    response = http.get("/")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    shown = {k: v for k, v in body.items() if k != "id"}  # FastAPI's: the store id
    assert shown == {"views": views, "user": user}, body
    assert session_cookies(response) == ["koa.sess", "koa.sess.sig"], response.headers
    return body


def check_example(url: str, example: str, has_login: bool) -> None:
    with httpx.Client(base_url=url, timeout=10) as http:
        first = check_views(http, 1, None)
        second = check_views(http, 2, None)
        assert first.get("id") == second.get("id")  # the same session (store mode: same id)
        if not has_login:
            return
        before = {name: http.cookies[name] for name in ("koa.sess", "koa.sess.sig")}
        login = http.post("/login", json={"user": "ada"})
        assert login.status_code == 200, login.text
        assert login.json().get("user") == "ada", login.text
        assert session_cookies(login) == ["koa.sess", "koa.sess.sig"], login.headers
        after = http.cookies["koa.sess"]
        assert after != before["koa.sess"]  # regenerate(): a new cookie (store mode: a new id)
        views = 1 if example in LOGIN_REPLACES_DATA else 3
        third = check_views(http, views, "ada")
        if "id" in second:  # store mode: the new id, and the old session is gone
            assert login.json()["id"] == third["id"] != second["id"]
            with httpx.Client(base_url=url, timeout=10, cookies=before) as old:
                assert old.get("/").json()["views"] == 1


def test_the_run_line_parser() -> None:
    assert EXAMPLES, f"no examples in {ROOT / 'examples'}"
    two = """Quart.

Run: ``hypercorn examples.quart_app:app`` or ``uvicorn
examples.quart_app:app`` (set ``KOASESSION_KEY``, e.g. to the output of ``koasession keygen``).
"""
    assert documented_commands(two) == [
        "hypercorn examples.quart_app:app",
        "uvicorn examples.quart_app:app",
    ]
    one_sentence = """Flask.

Run: ``flask --app examples.flask_app run`` (set ``KOASESSION_KEY``). The same app in store
mode: ``init_app(app, KEYS, store=RedisStore())``.

Not a command: ``other``.
"""
    assert documented_commands(one_sentence) == ["flask --app examples.flask_app run"]
    assert documented_commands("No run line: ``uvicorn app:app``.") == []


@pytest.mark.parametrize(("example", "command"), list(cases()))
def test_documented_command_serves_the_example(
    example: Path, command: str | None, servers: list[Server], tmp_path: Path
) -> None:
    if command is None:
        pytest.fail(
            f"examples/{example.name} has no `Run: ``command``` line in its docstring "
            "(how to run it, as the other examples say)"
        )
    require_imports(example)
    server = start(command, servers, tmp_path)
    source = example.read_text()
    check_example(server.url, example.stem, has_login='"/login"' in source)
    code = server.stop(signal.SIGTERM, group=True)
    output = server.text()
    assert code is not None, f"`{command}` did not exit after SIGTERM:\n{output}"
    tool = tool_of(shlex.split(command))
    expected = EXIT_STATUS.get(tool, 0)
    assert code == expected, f"`{command}` exited with {code}, not {expected}:\n{output}"
    assert SHUTDOWN_LINE.get(tool, "") in output, output
    assert_clean(output)
    assert "KOASESSION_KEY is not set" not in output, output  # the key was read
