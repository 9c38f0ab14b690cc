"""The start-up heap is frozen: full collections no longer walk it (carepulse.shared.heap)."""

from __future__ import annotations

import gc
import weakref

from carepulse.shared.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_live_objects_are_frozen_and_start_up_garbage_is_collected_first() -> None:
    kept = _Node()
    garbage = weakref.ref(_Node())
    gc.unfreeze()
    try:
        freeze_startup_heap()
        assert garbage() is None  # collected, not frozen forever
        assert gc.get_freeze_count() > 0
        assert all(o is not kept for o in gc.get_objects())  # the collector no longer walks it
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())
