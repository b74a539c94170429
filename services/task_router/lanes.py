"""Priority lanes: how a router shares its free slots among the lanes' durable consumers (pure).

Each lane (critical, high, normal, low) is its own durable consumer of the task stream. A router
asks each lane for messages with pull requests; this module decides how many, from what the
router knows of each lane: what it holds, what it has asked for and not received, the lane's
backlog as of its last delivery (`num_pending`), and whether it delivered anything lately.

- A lane with nothing waiting and nothing delivered lately (idle) keeps one pull of one message
  outstanding, beyond the slots, so that a task arriving there is delivered at once.
- The free slots go to the lanes that want them by smooth weighted round robin (critical 8,
  high 4, normal 2, low 1): while several lanes have a backlog, each gets its weight's share of
  the slots that free up, so higher lanes drain first and low still moves (1 slot in 15 while
  all four are backlogged, 1 in 9 against critical alone).
- A lane wants as many as its backlog; a lane still receiving wants every free slot, unless
  another lane has a backlog: then it keeps at most `stream_cap` pulls waiting, so that slots are
  not held open for arrivals while other lanes have work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from swarmhub import subjects

WEIGHTS: dict[str, int] = {"critical": 8, "high": 4, "normal": 2, "low": 1}
"""Share of the free slots each lane gets while several lanes have a backlog."""
ACTIVE_FOR = 2.0
"""Seconds a lane counts as receiving after its last delivery."""
RANKS: dict[str, int] = {lane: rank for rank, lane in enumerate(subjects.LANES)}
"""Rank of each lane, 0 = most urgent."""
UNLIMITED = 1 << 30


@dataclass(frozen=True)
class LaneState:
    """What a router knows of one lane right now."""

    held: int = 0
    """Tasks of this lane the router holds."""
    outstanding: int = 0
    """Messages asked for and not yet delivered."""
    backlog: int = 0
    """Messages waiting in the lane's consumer after its last delivery (0 once a pull ran dry)."""
    active: bool = False
    """Whether the lane delivered anything in the last ACTIVE_FOR seconds."""

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing arriving lately: one watching pull is enough."""
        return not self.active and self.backlog <= 0


class LanePlanner:
    """Decides how many messages to ask each lane for (lanes in rank order, most urgent first).

    Keeps the round-robin credit between calls, so the shares hold across many small grants
    (a backlogged router frees its slots one at a time). No I/O and no clock.
    """

    def __init__(
        self,
        slots: int,
        weights: Sequence[int] | None = None,
        min_pull: int = 1,
        stream_cap: int | None = None,
    ) -> None:
        self.weights = list(weights or [WEIGHTS[lane] for lane in subjects.LANES])
        if not self.weights or min(self.weights) < 1:
            raise ValueError("Invalid lane weights. Every lane needs a weight of at least 1.")
        self.slots = slots
        self.min_pull = max(1, min_pull)
        self.stream_cap = stream_cap if stream_cap is not None else max(1, slots // 16)
        self.credit = [0] * len(self.weights)
        self.contended = False
        """Whether the last plan had more than one lane wanting slots (then each freed slot is
        shared out at once, instead of waiting for a batch)."""

    @property
    def capacity(self) -> int:
        """Most tasks held at once: the slots, plus one per lane for its watching pull."""
        return self.slots + len(self.weights)

    def plan(self, lanes: Sequence[LaneState]) -> list[int]:
        """How many messages to ask each lane for now (0 = none)."""
        if len(lanes) != len(self.weights):
            raise ValueError(f"Expected {len(self.weights)} lanes, got {len(lanes)}.")
        grants = [1 if lane.idle and lane.outstanding == 0 else 0 for lane in lanes]
        # An idle lane's one watching pull does not take a slot (it is beyond them).
        free = (
            self.slots
            + sum(lane.idle for lane in lanes)
            - sum(lane.held + lane.outstanding for lane in lanes)
            - sum(grants)
        )
        backlogged = sum(lane.backlog > 0 for lane in lanes)
        wants = [self._want(lane, backlogged - (lane.backlog > 0) > 0) for lane in lanes]
        self.contended = sum(want > 0 for want in wants) > 1
        if free <= 0:
            return grants
        # Few free slots: wait for a fuller batch, unless lanes contend for them (each slot then
        # goes by weight as it frees, or a burst would enter by batch, not by lane), or a lane
        # that wants more has no pull outstanding (a backlogged lane's pulls fill at once).
        starved = any(
            want > 0 and lane.outstanding == 0 for want, lane in zip(wants, lanes, strict=True)
        )
        if free < self.min_pull and not (starved or self.contended):
            return grants
        for index, extra in enumerate(self.share(free, wants)):
            grants[index] += extra
        return grants

    def _want(self, lane: LaneState, others_backlogged: bool) -> int:
        if lane.idle:
            return 0
        limit = max(0, lane.backlog)
        if lane.active:
            limit = max(limit, self.stream_cap if others_backlogged else UNLIMITED)
        return max(0, limit - lane.outstanding)

    def share(self, free: int, wants: Sequence[int]) -> list[int]:
        """Split `free` among lanes wanting `wants[i]` each, by smooth weighted round robin."""
        grants = [0] * len(wants)
        left = list(wants)
        eligible = [i for i, want in enumerate(left) if want > 0]
        while free > 0 and eligible:
            if len(eligible) == 1:
                only = eligible[0]
                grants[only] += min(free, left[only])
                break
            total = 0
            for i in eligible:
                self.credit[i] += self.weights[i]
                total += self.weights[i]
            # Ties go to the more urgent lane (max keeps the first of equals).
            best = max(eligible, key=self.credit.__getitem__)
            self.credit[best] -= total
            grants[best] += 1
            left[best] -= 1
            free -= 1
            if left[best] == 0:
                eligible.remove(best)
        return grants
