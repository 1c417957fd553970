"""Device facts for "where you are signed in": what a session records about the device it
started on, and when it was last seen.

Pure functions, no I/O. :func:`device_facts` turns a request's headers and client address into a
small JSON-safe dict under a :class:`DevicePolicy`. The middleware records them itself with
the ``device_policy`` option (store mode, a store with an ``owner`` function): at login
(``regenerate()``), and refreshes ``last_seen`` on saves at most once per
``policy.touch_interval``. :func:`record_device` and :func:`touch_device` do the same to a
plain mapping of stored data (a session refuses the reserved :data:`DEVICE_KEY`).
The stores' ``list_owner`` read the facts back (:func:`read_device`).

Privacy: by default the facts hold the user agent (truncated) and the two timestamps, never an
IP address. ``ip="prefix"`` keeps a coarse network (IPv4 /24, IPv6 /48); ``ip="full"`` keeps the
whole address, which is personal data (GDPR and similar laws): choose it only with a reason,
and say so in your privacy notice.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigurationError, check_flag

__all__ = [
    "DEFAULT_POLICY",
    "DEVICE_KEY",
    "DevicePolicy",
    "IpMode",
    "device_facts",
    "ip_prefix",
    "read_device",
    "record_device",
    "touch_device",
]

#: The key the device facts live under in a stored session: metadata (``codec.META_KEYS``), so
#: the application cannot set it and ``to_json()`` leaves it out; the middleware writes it when
#: the ``device_policy`` option is set (:mod:`koasession.devicehook`).
DEVICE_KEY = "_device"

#: How much of the client address to keep: nothing, a coarse prefix, or all of it.
IpMode = Literal["none", "prefix", "full"]

_IP_MODES = ("none", "prefix", "full")
# Longest user agent accepted as a policy limit: real ones are a few hundred characters, and the
# facts travel in every save of the session.
_MAX_UA_LIMIT = 1024


@dataclass(frozen=True)
class DevicePolicy:
    """What :func:`device_facts` records.

    :param user_agent: record the ``User-Agent`` header.
    :param user_agent_max: keep at most this many characters of it (1..1024).
    :param ip: ``"none"`` (default), ``"prefix"`` (IPv4 /24, IPv6 /48) or ``"full"`` (the whole
        address: personal data, only when explicitly chosen).
    :param touch_interval: refresh ``last_seen`` at most this often, in seconds.
    """

    user_agent: bool = True
    user_agent_max: int = 256
    ip: IpMode = "none"
    touch_interval: float = 60.0

    def __post_init__(self) -> None:
        check_flag("user_agent", self.user_agent)
        limit = self.user_agent_max
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _MAX_UA_LIMIT:
            raise ConfigurationError(f"user_agent_max must be an integer in 1..{_MAX_UA_LIMIT}")
        if self.ip not in _IP_MODES:
            raise ConfigurationError(f"ip must be one of {', '.join(_IP_MODES)}; got {self.ip!r}")
        interval = self.touch_interval
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0:
            raise ConfigurationError("touch_interval must be a non-negative number of seconds")


#: The default policy: truncated user agent, no IP, ``last_seen`` once a minute.
DEFAULT_POLICY = DevicePolicy()


def ip_prefix(address: str) -> str | None:
    """The coarse network of ``address`` (``"203.0.113.0/24"``, ``"2001:db8:1::/48"``), or
    ``None`` when it is not an IP address. An IPv4-mapped IPv6 address counts as IPv4."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = 24 if isinstance(ip, ipaddress.IPv4Address) else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def _user_agent(headers: Iterable[tuple[bytes, bytes]], limit: int) -> str | None:
    for name, value in headers:
        if name.lower() == b"user-agent":
            # latin-1 never fails, and control characters would only garble a page that shows it.
            text = "".join(ch for ch in value.decode("latin-1") if ch.isprintable())
            return text.strip()[:limit] or None
    return None


def device_facts(
    headers: Iterable[tuple[bytes, bytes]],
    client_ip: str | None,
    policy: DevicePolicy = DEFAULT_POLICY,
    now: float | None = None,
) -> dict[str, Any]:
    """The facts to record for a session starting now, as a small JSON-safe dict.

    ``headers`` are the ASGI request headers, ``client_ip`` the client address (``scope["client"]
    [0]``, or what a trusted proxy header says). Keys: ``created_at`` and ``last_seen`` (Unix
    seconds, integers), ``user_agent`` and ``ip`` when the policy records them and they are known.
    """
    at = int(time.time() if now is None else now)
    facts: dict[str, Any] = {"created_at": at, "last_seen": at}
    if policy.user_agent:
        agent = _user_agent(headers, policy.user_agent_max)
        if agent is not None:
            facts["user_agent"] = agent
    if client_ip is not None and policy.ip != "none":
        shown = ip_prefix(client_ip) if policy.ip == "prefix" else _full_ip(client_ip)
        if shown is not None:
            facts["ip"] = shown
    return facts


def _full_ip(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError:
        return None


def record_device(session: MutableMapping[str, Any], facts: Mapping[str, Any]) -> None:
    """Store ``facts`` (from :func:`device_facts`) in ``session``; call it at login, after
    ``regenerate()`` or just before, in store mode with an ``owner`` function."""
    session[DEVICE_KEY] = dict(facts)


def touch_device(
    session: MutableMapping[str, Any],
    policy: DevicePolicy = DEFAULT_POLICY,
    now: float | None = None,
) -> bool:
    """Refresh ``last_seen`` when it is at least ``policy.touch_interval`` old; return whether
    the session changed. A session without device facts is left alone."""
    facts = session.get(DEVICE_KEY)
    if not isinstance(facts, dict):
        return False
    at = int(time.time() if now is None else now)
    seen = facts.get("last_seen")
    if (
        isinstance(seen, (int, float))
        and not isinstance(seen, bool)
        and at - seen < policy.touch_interval
    ):
        return False
    session[DEVICE_KEY] = {**facts, "last_seen": at}
    return True


def read_device(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The device facts saved in session ``data``, keeping only well-typed fields; ``None``
    when there are none. Stored data may come from older versions or other apps."""
    facts = data.get(DEVICE_KEY)
    if not isinstance(facts, dict):
        return None
    out: dict[str, Any] = {}
    for name in ("user_agent", "ip"):
        value = facts.get(name)
        if isinstance(value, str):
            out[name] = value
    for name in ("created_at", "last_seen"):
        value = facts.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = value
    return out
