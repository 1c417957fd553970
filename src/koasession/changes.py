"""Change detection: whether the session changed since it was loaded or last saved.

koa compares the serialised data with what was loaded. Serialising costs a JSON encode, so the
engine avoids it where it can prove the answer another way: the session counts writes through it
(``Session._writes``), and data with no nested object or array can only change through such a
write. What the data read as is ``prev_json``; for flat data just loaded it is kept as a copy and
serialised only if something compares with it.
"""

from __future__ import annotations

import time
from typing import Any

from . import codec, decisions
from .enginestate import EngineState


class Changes(EngineState):
    """Change detection: ``prev_json``, the write-count shortcut, and the reason to save."""

    @property
    def prev_json(self) -> str | None:
        """The snapshot of the data as loaded or last saved (``None``: nothing was loaded)."""
        flat = self._prev_flat
        if flat is not None:
            self._prev_json = codec.snapshot(flat)
            self._prev_flat = None
        return self._prev_json

    @prev_json.setter
    def prev_json(self, data_json: str | None) -> None:
        self._prev_json = data_json
        self._prev_flat = None

    def forget_loaded(self) -> None:
        """Forget what was loaded: from now on the data compares with nothing (a new session's
        reference), and the next save writes a new session's metadata (``_created`` included).
        """
        self.loaded_expire = self.loaded_created = self.loaded_accessed = None
        self.loaded_device = None
        self.loaded_max_age_ms = self.loaded_max_age = None
        self.prev_json = None
        self.clean_writes = -1
        self.loaded_key = None

    def note_loaded(self, data: dict[str, Any]) -> None:
        """Note ``data``, just loaded and adopted, as what the session read as."""
        if self.cfg.options.serializer is None and codec.is_flat(data):
            self.note_clean_flat(data)
        else:
            self.note_clean(codec.snapshot(self.json_safe(data)))

    def note_clean_flat(self, data: dict[str, Any]) -> None:
        """:meth:`note_clean` for data just loaded whose values are all ``str``, ``int``,
        ``float``, ``bool`` or ``None`` (and no serializer): a shallow copy stands in for its
        snapshot.

        Most requests never compare with the loaded snapshot: a read-only request commits
        nothing (``only_read``), and a changed session differs from the copy as a dict
        (``reason_to_save``). Serialising it at load would be wasted on both.
        """
        self._prev_flat = dict(data)
        self.clean_writes = self.session._writes

    def note_clean(self, data_json: str) -> None:
        """Record ``data_json`` (a snapshot of the data now) as ``prev_json``.

        When the data holds no object or array (and no serializer maps its values), the only
        way it can change is a write through the session, which counts it: until the count
        moves, commit and the after-response check know it is unchanged without serialising it
        again. A bracket inside a string only makes the check take the slow path.
        """
        self.prev_json = data_json
        if holds_no_container(data_json) and self.cfg.options.serializer is None:
            self.clean_writes = self.session._writes
        else:
            self.clean_writes = -1

    def only_read(self) -> bool:
        """Whether an automatic commit would certainly write nothing: the session was loaded
        and only read (the commonest request that uses it), and no option refreshes its lifetime.

        The write count proves the data unchanged (see ``note_clean``); what else could make a
        commit act (a replacement or removal in the scope, ``_require_save``, ``rolling``,
        ``renew``, ``idle_timeout``) is ruled out here too, so :meth:`_commit` need not run.
        """
        session = self.session
        opts = self._opts or self.cfg.options
        return (
            session._writes == self.clean_writes
            and not session._require_save
            and not session._removed
            and not opts.rolling
            and not opts.renew
            and opts.idle_timeout is None
            and self.slot.get(opts.scope_key, session) is session
        )

    def reason_to_save(self, data_json: str) -> decisions.SaveReason:
        """Why an unforced commit saves (see :func:`decisions.reason_to_save`)."""
        flat = self._prev_flat
        if flat is not None and self.session._data != flat:
            # Loaded flat and unequal now: the snapshots differ too (equal dicts may still
            # serialise apart, 1 and 1.0 or another key order: those compare as text below).
            return "changed"
        prev_json = self.prev_json
        if data_json != prev_json:
            # Its first two rules, without the ten-argument call, for the common case.
            return "" if prev_json is None and data_json == "{}" else "changed"
        opts = self._opts or self.cfg.options
        return decisions.reason_to_save(
            data_json=data_json,
            prev_json=self.prev_json,
            committed=self.committed,
            rolling=opts.rolling,
            renew=opts.renew,
            max_age=opts.max_age,
            loaded_expire=self.loaded_expire,
            idle_timeout=opts.idle_timeout,
            loaded_accessed=self.loaded_accessed,
            now_ms=time.time() * 1000,
        )


def holds_no_container(data_json: str) -> bool:
    """Whether the snapshot ``data_json`` has no object or array inside its top-level object:
    such data changes only through writes the session counts. A bracket inside a string only
    makes this answer False, which costs a snapshot, never a missed change."""
    return "[" not in data_json and data_json.find("{", 1) < 0
