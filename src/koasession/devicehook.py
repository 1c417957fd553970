"""The device part of the engine: record device facts for owned sessions in store mode.

With the ``device_policy`` option and a store that has an ``owner`` function, a save of a
session that has an owner carries ``_device`` (see :mod:`koasession.devices`): fresh facts at
login (``regenerate()``) or when the session has none yet, otherwise the loaded facts with
``last_seen`` refreshed at most once per ``policy.touch_interval``. ``_device`` is metadata: the
application cannot set it and ``to_json()`` leaves it out.
"""

from __future__ import annotations

from typing import Any

from .devices import DEVICE_KEY, device_facts, touch_device
from .enginestate import EngineState


class DeviceHook(EngineState):
    """Keeps ``loaded_device`` (written back with the metadata) up to date before a save."""

    def client_ip(self) -> str | None:
        """The client address: the first ``X-Forwarded-For`` entry with ``proxy=True``, else
        the one the adapter passed."""
        if self.cfg.options.proxy:
            for name, value in self.headers:
                if name == b"x-forwarded-for":
                    first = value.split(b",", 1)[0].strip().decode("latin-1")
                    if first:
                        return first
        return self.client

    def note_device(self, data: dict[str, Any], *, regenerate: bool) -> None:
        """Record or refresh the device facts of ``data``'s session before it is saved."""
        policy = self.cfg.options.device_policy
        owner = getattr(self.store, "owner", None)
        if policy is None or not callable(owner) or owner(data) is None:
            return
        device = self.loaded_device
        if regenerate or not isinstance(device, dict):
            self.loaded_device = device_facts(self.headers, self.client_ip(), policy)
            return
        holder: dict[str, Any] = {DEVICE_KEY: device}
        if touch_device(holder, policy):
            self.loaded_device = holder[DEVICE_KEY]
