"""The ``koasession`` command line.

Subcommands:

- ``koasession demo [--store URL] [--keys KEY]``: serve the demo app on http://127.0.0.1:3000.
- ``koasession inspect COOKIE [--keys KEY]``: verify and decode a cookie, and say exactly why
  it is rejected when it is; with ``--store URL``, look a store-mode id up. Keys may also come
  from ``KOASESSION_KEY`` (whitespace-separated), which keeps them out of shell history.
- ``koasession keygen``: print a strong random key.
- ``koasession purge --store URL``: delete expired sessions from a SQL store
  (``postgresql://...``, ``mysql://...`` or ``sqlite:///path``), for a cron job or a deploy hook.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from . import __version__
from .envkeys import KEY_ENV, keys_from_env
from .errors import SessionError

if TYPE_CHECKING:
    from .diagnose import Diagnosis


def _purge(args: argparse.Namespace) -> int:
    from .stores import store_from_url

    url: str = args.store
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster", "memory"):
        print(
            f"koasession purge: nothing to do for {scheme}:// stores: their entries expire "
            "on their own",
            file=sys.stderr,
        )
        return 0
    if args.limit is not None and args.limit < 1:
        print("koasession purge: --limit must be a positive integer", file=sys.stderr)
        return 2
    if scheme == "sqlite":
        path = url.partition("://")[2]
        path = path[1:] if path.startswith("/") else path
        if not os.path.exists(path):
            # Opening a missing file would create an empty database as a side effect.
            print(f"koasession purge: no such database file: {path}", file=sys.stderr)
            return 1
    options: dict[str, Any] = {"create_table": False, "purge_every": 0}
    if args.table:
        options["table"] = args.table

    async def run() -> int:
        store = store_from_url(url, **options)
        try:
            count: int = await store.purge_expired(args.limit)
        finally:
            await store.close()
        return count

    count = asyncio.run(run())
    if not args.quiet:
        print(f"purged {count} expired session(s)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    argv = ["--host", args.host, "--port", str(args.port)]
    if args.store:
        argv += ["--store", args.store]
    for key in args.keys or ():
        argv.append(f"--keys={key}")  # one token: a key may start with "-"
    return demo_main(argv)


def _split(values: Sequence[str] | None, sep: str | None = None) -> list[str]:
    """Repeated option values, each possibly holding several items."""
    return [item for value in values or () for item in value.split(sep) if item.strip()]


def _inspect(args: argparse.Namespace) -> int:
    from .diagnose import diagnose, format_diagnosis

    keys = _split(args.keys) or keys_from_env()
    algorithms = _split(args.algorithm, ",") or ["sha256"]
    store_url: str | None = args.store
    store_mode = args.store_id or store_url is not None
    if store_url is not None and store_url.partition("://")[0].lower() == "memory":
        print(
            "koasession inspect: a memory:// store lives inside the app's process; "
            "there is nothing to look up from here",
            file=sys.stderr,
        )
        return 2
    result = diagnose(
        args.cookie,
        keys,
        key=args.key,
        algorithm=algorithms[0] if len(algorithms) == 1 else algorithms,
        encrypt=args.encrypt,
        signature=args.signature,
        signed=not args.unsigned,
        store=store_mode,
        style="cli",
    )
    if store_url is not None:
        result = asyncio.run(_look_up(result, store_url, args))
    print(format_diagnosis(result))
    return 0 if result.ok else 1


async def _look_up(result: Diagnosis, url: str, args: argparse.Namespace) -> Diagnosis:
    from .diagnose import look_up
    from .stores import store_from_url

    options: dict[str, Any] = {}
    scheme = url.partition("://")[0].lower()
    is_sql = scheme.startswith(("postgres", "sqlite", "mysql", "mariadb"))
    if args.prefix is not None:
        if is_sql:
            raise ValueError("--prefix is for redis:// stores; SQL stores take --table")
        options["key_prefix"] = args.prefix
    if args.table is not None:
        if not is_sql:
            raise ValueError("--table is for postgresql://, mysql:// and sqlite:// stores")
        options["table"] = args.table
    if scheme == "sqlite":
        path = url.partition("://")[2]
        path = path[1:] if path.startswith("/") else path
        if not os.path.exists(path):
            # Opening a missing file would create an empty database as a side effect.
            raise ValueError(f"no such database file: {path}")
    if is_sql:
        options["create_table"] = False  # inspecting must not create anything
        options.setdefault("purge_every", 0)
    store = store_from_url(url, **options)
    try:
        return await look_up(result, store, where=_safe_url(url))
    finally:
        await store.close()


def _safe_url(url: str) -> str:
    """``url`` without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{host}"


def _keygen(args: argparse.Namespace) -> int:
    from .diagnose import keygen

    for _ in range(args.count):
        print(keygen(args.bytes))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand sets ``func`` (add new ones here)."""
    parser = argparse.ArgumentParser(prog="koasession", description="koasession command-line tools")
    parser.add_argument("--version", action="version", version=f"koasession {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    purge = sub.add_parser(
        "purge",
        help="delete expired sessions from a SQL store",
        description="Delete expired sessions from a PostgreSQL, MySQL or SQLite store.",
    )
    purge.add_argument(
        "--store",
        required=True,
        metavar="URL",
        help="postgresql://user@host/db, mysql://user@host/db or sqlite:///path/to/sessions.db",
    )
    purge.add_argument("--table", help="table name (default: koasession_sessions)")
    purge.add_argument(
        "--limit", type=int, default=None, help="delete at most this many rows (default: all)"
    )
    purge.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    purge.set_defaults(func=_purge)

    demo = sub.add_parser(
        "demo",
        help="serve the demo app",
        description=f"Serve the demo app. Keys come from --keys or ${KEY_ENV}; without either, "
        "a random key per start (sessions end at restart).",
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=3000)
    demo.add_argument(
        "--store",
        metavar="URL",
        help="memory://, redis://..., postgresql://..., mysql://..., "
        "sqlite:// (a file in the user cache) or sqlite:///path",
    )
    demo.add_argument(
        "--keys",
        action="append",
        metavar="KEY",
        help=f"app key, repeatable, the first signing (default: ${KEY_ENV})",
    )
    demo.set_defaults(func=_demo)

    inspect = sub.add_parser(
        "inspect",
        help="verify and decode a session cookie",
        description="Verify and decode a cookie; exit 0 when the middleware would accept it. "
        f"Keys come from --keys or ${KEY_ENV} (several: whitespace-separated). Options may "
        "come before or after the cookie.",
    )
    inspect.add_argument(
        "cookie", help="a Cookie header ('koa.sess=...; koa.sess.sig=...') or a value"
    )
    inspect.add_argument(
        "--keys",
        action="append",
        metavar="KEY",
        help=f"app key, repeatable, the first signing (default: ${KEY_ENV})",
    )
    inspect.add_argument(
        "--key",
        "--cookie-name",
        dest="key",
        default="koa.sess",
        metavar="NAME",
        help="cookie name, the middleware's key option (default: koa.sess)",
    )
    inspect.add_argument(
        "--algorithm",
        action="append",
        metavar="ALG",
        help="signing algorithm, repeatable or comma-separated, first signing (default: sha256)",
    )
    inspect.add_argument("--signature", metavar="SIG", help="the .sig value, for a bare value")
    inspect.add_argument("--encrypt", action="store_true", help="the cookie is encrypted")
    inspect.add_argument("--unsigned", action="store_true", help="the app runs with signed=False")
    inspect.add_argument("--store-id", action="store_true", help="the cookie holds a store id")
    inspect.add_argument(
        "--store",
        metavar="URL",
        help="look the store id up in this store (redis://, postgresql://, mysql://, "
        "sqlite:///path); implies --store-id",
    )
    inspect.add_argument("--prefix", help="RedisStore key_prefix the app uses")
    inspect.add_argument("--table", help="SQL store table the app uses")
    inspect.set_defaults(func=_inspect)

    keygen = sub.add_parser("keygen", help="print strong random keys")
    keygen.add_argument("--bytes", type=int, default=32, help="random bytes per key (min 32)")
    keygen.add_argument("--count", type=int, default=1, help="how many keys")
    keygen.set_defaults(func=_keygen)
    return parser


#: Options whose value is a secret or a signature: base64url text, which may start with "-".
_VALUE_OPTIONS = ("--keys", "--signature")


def _join_dashed_values(argv: Sequence[str], options: Collection[str] = ()) -> list[str]:
    """``--keys -x...`` as ``--keys=-x...``, which argparse would otherwise read as an option;
    also for an abbreviation (``--sig``) that can only mean one of these among ``options``
    (every option string of the command line).

    A key (43 characters or more) or a signature (27 or more) that starts with "-" is one
    value in 64; no option of this command is 20 characters long, so a longer token after one
    of these options is its value.
    """
    out: list[str] = []
    for arg in argv:
        if out and arg.startswith("-") and len(arg) >= 20 and _names_value_option(out[-1], options):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def _names_value_option(arg: str, options: Collection[str]) -> bool:
    if arg in _VALUE_OPTIONS or arg in options:
        return arg in _VALUE_OPTIONS  # an exact name (``--key`` is another option)
    if not arg.startswith("--") or len(arg) < 3:
        return False
    meant = [o for o in options if o.startswith(arg)]
    return bool(meant) and all(o in _VALUE_OPTIONS for o in meant)


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and its subcommands."""
    found: set[str] = set()
    for action in parser._actions:  # argparse has no public walk of its options
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _option_strings(sub)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``koasession`` command; returns the exit status."""
    parser = build_parser()
    given = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(_join_dashed_values(given, _option_strings(parser)))
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except (SessionError, ValueError, OSError, ImportError) as exc:
        print(f"koasession {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # Driver errors (asyncpg, sqlite3) have no common base; report them without a
        # traceback, which would only hide the message in a cron mail.
        print(f"koasession {args.command}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
