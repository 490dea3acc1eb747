"""Working memory: per (cube, conversation), a small hot set consulted before search.

See :mod:`memos.working.memory` for the container and
:mod:`memos.working.config` for the scoring knobs.
"""

from memos.working.config import DecayUnit, WorkingConfig
from memos.working.memory import EntryStat, Observed, UsageDelta, WorkingKey, WorkingMemory

__all__ = [
    "DecayUnit",
    "EntryStat",
    "Observed",
    "UsageDelta",
    "WorkingConfig",
    "WorkingKey",
    "WorkingMemory",
]
