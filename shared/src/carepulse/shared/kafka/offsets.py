"""Which offsets a stream worker may commit while its lanes finish records out of order.

Lanes handle records of different patients side by side, so offset 12 of a partition can
finish before offset 11. Committing 13 then would lose 11 if the worker died: a committed
position must never pass a record that is still being handled. The tracker remembers, per
partition, the offsets read and not yet finished; the position to commit is the first of
them (or one past the last finished when none is open).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class OffsetTracker(Generic[P]):
    """Open offsets per partition and the commit positions they allow (plain, no I/O)."""

    def __init__(self) -> None:
        self._open: dict[P, deque[int]] = {}
        self._done: dict[P, set[int]] = {}
        self._ready: dict[P, int] = {}  # position reached, not yet handed out by take()
        self.in_flight = 0

    def started(self, partition: P, offset: int) -> None:
        """``offset`` was read; offsets of one partition must be started in increasing order."""
        self._open.setdefault(partition, deque()).append(offset)
        self.in_flight += 1

    def finished(self, partition: P, offset: int) -> None:
        """``offset`` is done (handled or dead-lettered); a forgotten partition's are ignored."""
        open_ = self._open.get(partition)
        if open_ is None:
            return
        self.in_flight -= 1
        if open_[0] != offset:
            self._done.setdefault(partition, set()).add(offset)
            return
        last = open_.popleft()
        done = self._done.get(partition)
        while open_ and done and open_[0] in done:
            last = open_.popleft()
            done.remove(last)
        # Kafka's committed position is the next offset to read.
        self._ready[partition] = open_[0] if open_ else last + 1

    def take(self) -> dict[P, int]:
        """Commit positions that moved since the last call."""
        ready, self._ready = self._ready, {}
        return ready

    def forget(self, partitions: Iterable[P]) -> None:
        """The partitions were taken away (rebalance): what is still open there is not ours."""
        for p in partitions:
            self.in_flight -= len(self._open.pop(p, ())) - len(self._done.pop(p, ()))
            self._ready.pop(p, None)

    def retry(self, positions: dict[P, int]) -> None:
        """Positions whose commit failed: hand them out again unless a newer one is waiting."""
        for p, pos in positions.items():
            if p in self._open:
                self._ready.setdefault(p, pos)
