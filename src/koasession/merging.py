"""What a merging save sends (``merge=True``): the top-level keys a request changed or deleted.

Pure: a function of the data as loaded and as it is now (both as the engine's change-detection
snapshots) and of the metadata the save writes.
"""

from __future__ import annotations

import json
from typing import Any

from .codec import META_KEYS, snapshot

__all__ = ["diff"]


def diff(
    prev_json: str, data_json: str, metadata: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The keys to set and the keys to delete so that a stored value loaded as ``prev_json``
    holds this request's changes, and the metadata ``metadata``.

    A key counts as changed when its JSON differs from what was loaded (so ``1`` and ``True``
    differ, as they do for the store). Metadata keys the save does not write are deleted, so a
    lifetime that changed kind (``_session`` to ``_expire``) leaves no stale field.
    """
    prev: dict[str, Any] = json.loads(prev_json)
    now: dict[str, Any] = json.loads(data_json)
    changed = {
        name: value
        for name, value in now.items()
        if name not in prev or snapshot(value) != snapshot(prev[name])
    }
    deleted = [name for name in prev if name not in now]
    changed.update(metadata)
    deleted.extend(sorted(META_KEYS.difference(metadata)))
    return changed, deleted
