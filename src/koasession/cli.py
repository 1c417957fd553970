"""The ``koasession`` command line.

Subcommands:

- ``koasession demo [--store URL]``: serve the demo app on http://127.0.0.1:3000.
- ``koasession inspect COOKIE --keys KEY...``: verify and decode a cookie, and say exactly why
  it is rejected when it is (keys may also come from ``KOASESSION_KEYS``, comma-separated, to
  keep them out of shell history).
- ``koasession keygen``: print a strong random key.
- ``koasession purge --store URL``: delete expired sessions from a SQL store
  (``postgresql://...`` or ``sqlite:///path``), for a cron job or a deploy hook.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from .errors import SessionError


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
    return demo_main(argv)


def _inspect(args: argparse.Namespace) -> int:
    from .diagnose import diagnose, format_diagnosis

    keys = args.keys or [k for k in os.environ.get("KOASESSION_KEYS", "").split(",") if k]
    algorithm = args.algorithm[0] if len(args.algorithm) == 1 else args.algorithm
    result = diagnose(
        args.cookie,
        keys,
        key=args.key,
        algorithm=algorithm,
        encrypt=args.encrypt,
        signed=not args.unsigned,
        store=args.store_id,
    )
    print(format_diagnosis(result))
    return 0 if result.ok else 1


def _keygen(args: argparse.Namespace) -> int:
    from .diagnose import keygen

    for _ in range(args.count):
        print(keygen(args.bytes))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each subcommand sets ``func`` (add new ones here)."""
    parser = argparse.ArgumentParser(prog="koasession", description="koasession command-line tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    purge = sub.add_parser(
        "purge",
        help="delete expired sessions from a SQL store",
        description="Delete expired sessions from a PostgreSQL or SQLite store.",
    )
    purge.add_argument(
        "--store",
        required=True,
        metavar="URL",
        help="postgresql://user@host/db or sqlite:///path/to/sessions.db",
    )
    purge.add_argument("--table", help="table name (default: koasession_sessions)")
    purge.add_argument(
        "--limit", type=int, default=None, help="delete at most this many rows (default: all)"
    )
    purge.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    purge.set_defaults(func=_purge)

    demo = sub.add_parser("demo", help="serve the demo app")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=3000)
    demo.add_argument(
        "--store", metavar="URL", help="memory://, redis://, postgresql://, sqlite:///"
    )
    demo.set_defaults(func=_demo)

    inspect = sub.add_parser(
        "inspect",
        help="verify and decode a session cookie",
        description="Verify and decode a cookie; exit 0 when the middleware would accept it.",
    )
    inspect.add_argument(
        "cookie", help="a Cookie header ('koa.sess=...; koa.sess.sig=...') or a value"
    )
    inspect.add_argument("--keys", nargs="+", metavar="KEY", help="app keys, first signing")
    inspect.add_argument("--key", default="koa.sess", help="cookie name (default: koa.sess)")
    inspect.add_argument(
        "--algorithm", nargs="+", default=["sha256"], help="signing algorithm(s), first signing"
    )
    inspect.add_argument("--encrypt", action="store_true", help="the cookie is encrypted")
    inspect.add_argument("--unsigned", action="store_true", help="the app runs with signed=False")
    inspect.add_argument("--store-id", action="store_true", help="the cookie holds a store id")
    inspect.set_defaults(func=_inspect)

    keygen = sub.add_parser("keygen", help="print strong random keys")
    keygen.add_argument("--bytes", type=int, default=32, help="random bytes per key (min 32)")
    keygen.add_argument("--count", type=int, default=1, help="how many keys")
    keygen.set_defaults(func=_keygen)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``koasession`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
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
