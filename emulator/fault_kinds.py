"""The fault kinds that reach past the error answer, shared by the fault engine and the code that acts on them.

:mod:`emulator.faults` decides a call's fault; the server cuts the connection for :data:`DROP` (before the
handler) and :data:`DROP_AFTER` (after it), and OSS damages an upload's body for :data:`CORRUPT`. A leaf module:
the engine's config check loads every product to know their actions, so a product (OSS) takes these names from
here rather than from the engine, and no import cycle forms.
"""

from __future__ import annotations

DROP = "drop"
DROP_AFTER = "drop_after"
CORRUPT = "corrupt"
# the calls whose request body a ``corrupt`` rule can damage (OSS uploads)
CORRUPT_ACTIONS = ("oss:PutObject", "oss:UploadPart", "oss:AppendObject")

__all__ = ["CORRUPT", "CORRUPT_ACTIONS", "DROP", "DROP_AFTER"]
