"""App keys from the environment: one variable name for the examples, the CLI and the demo.

``KOASESSION_KEY`` holds one key, or several separated by whitespace (the first signs, every key
verifies). ``koasession keygen`` prints base64url keys, which never contain whitespace, so a
rotation is ``KOASESSION_KEY="$NEW $OLD"``. A key that does contain whitespace (one shared with a
Koa app, say) goes whole into a numbered variable: ``KOASESSION_KEY_1``, ``KOASESSION_KEY_2``,
... are appended in numeric order after the keys of ``KOASESSION_KEY``, and are never split.

Commas are not separators: a key may contain them.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping
from typing import TextIO

__all__ = ["KEY_ENV", "keys_from_env", "keys_from_env_or_random"]

#: The one environment variable name koasession's tools read keys from.
KEY_ENV = "KOASESSION_KEY"


def keys_from_env(name: str = KEY_ENV, *, environ: Mapping[str, str] | None = None) -> list[str]:
    """The keys in ``$name`` (whitespace-separated) then ``$name_1``, ``$name_2``, ... (whole).

    Returns an empty list when none is set. The keys are not validated here: the middleware
    checks them at start-up (length, placeholders) and says what to fix.
    """
    env = os.environ if environ is None else environ
    keys = env.get(name, "").split()
    numbered: list[tuple[int, str]] = []
    prefix = name + "_"
    for var, value in env.items():
        suffix = var[len(prefix) :] if var.startswith(prefix) else ""
        if suffix.isdigit() and suffix.isascii():
            numbered.append((int(suffix), value.strip()))
    keys += [value for _, value in sorted(numbered) if value]
    return keys


def keys_from_env_or_random(
    name: str = KEY_ENV,
    *,
    environ: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
    program: str = "koasession",
) -> list[str]:
    """:func:`keys_from_env`, or when no key is set, one random key and a warning on stderr.

    For examples and demos only: a random key differs on every start and in every worker
    process, so every session ends at a restart and a user moving between workers is logged
    out. A fixed fallback key would be worse: it is public, so anyone could forge a session
    for an app deployed as is.
    """
    keys = keys_from_env(name, environ=environ)
    if keys:
        return keys
    out = sys.stderr if stream is None else stream
    bar = "!" * 78
    print(
        f"{bar}\n"
        f"{program}: WARNING: {name} is not set; using a random key for this process only.\n"
        "Every session ends when the process restarts, and worker processes do not share it.\n"
        f"Set {name} to the output of `koasession keygen` (several keys: separated by spaces,\n"
        "the first signing).\n"
        f"{bar}",
        file=out,
        flush=True,
    )
    return [secrets.token_urlsafe(32)]
