"""Pure decisions of a swarm job: tallying sub-results, when it is settled, its reduction."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swarmhub import codec
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.schemas import (
    ErrorInfo,
    JobOutcome,
    JobStatus,
    ResultStatus,
    SwarmJob,
    SwarmJobResult,
    TaskResult,
)


def digest(output: Any) -> bytes:
    """A short fingerprint of an output: equal outputs (dict key order aside) share it."""
    text = json.dumps(output, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


@dataclass
class Ballot:
    """One distinct output: how many counted votes it has and who cast the first."""

    output: Any
    votes: int
    first_n: int


@dataclass
class Tally:
    """What one job has gathered: one compact row per finished sub-task, votes, kept outputs.

    Memory stays bounded: gathered outputs are kept only up to `keep_bytes` (then the result is
    marked truncated), and a vote keeps one copy per distinct output.
    """

    total: int
    reduce: str
    quorum: int | None = None
    tie: str = "fail"
    one_vote_per_agent: bool = False
    keep_bytes: int = 512 * 1024
    rows: dict[int, tuple[ResultStatus, str | None, int, ErrorInfo | None]] = field(
        default_factory=dict
    )
    outputs: dict[int, Any] = field(default_factory=dict)
    ballots: dict[bytes, Ballot] = field(default_factory=dict)
    voters: set[str] = field(default_factory=set)
    agents: dict[str, None] = field(default_factory=dict)
    succeeded: int = 0
    first_success: int | None = None
    kept_bytes: int = 0
    truncated: bool = False

    @classmethod
    def for_job(cls, job: SwarmJob, total: int, keep_bytes: int) -> Tally:
        """An empty tally for `job` run as `total` sub-tasks."""
        return cls(
            total=total,
            reduce=job.reduce,
            quorum=job.quorum,
            tie=job.tie,
            one_vote_per_agent=job.inputs is None,
            keep_bytes=keep_bytes,
        )

    @property
    def done(self) -> int:
        """Sub-tasks with a final result."""
        return len(self.rows)

    @property
    def failed(self) -> int:
        """Sub-tasks that ended without success."""
        return len(self.rows) - self.succeeded

    def add(self, n: int, result: TaskResult) -> bool:
        """Count sub-task `n`'s final result; False if it was counted already."""
        if n in self.rows or not 0 <= n < self.total:
            return False
        self.rows[n] = (result.status, result.agent_id, result.attempts, result.error)
        if result.agent_id:
            self.agents.setdefault(result.agent_id, None)
        if result.status is not ResultStatus.SUCCEEDED:
            return True
        self.succeeded += 1
        if self.first_success is None:
            self.first_success = n
        if self.reduce in ("vote", "quorum"):
            self._vote(n, result)
        elif self.reduce == "first":
            if n == self.first_success:
                self.outputs[n] = result.output
            return True
        if not self.truncated:
            self.kept_bytes += len(codec.pack(result.output))
            if self.kept_bytes > self.keep_bytes:
                self.truncated = True
                self.outputs.clear()
            else:
                self.outputs[n] = result.output
        return True

    def _vote(self, n: int, result: TaskResult) -> None:
        if self.one_vote_per_agent and result.agent_id:
            if result.agent_id in self.voters:
                return  # an agent that ran two sub-tasks of an ensemble votes once
            self.voters.add(result.agent_id)
        key = digest(result.output)
        ballot = self.ballots.get(key)
        if ballot is None:
            self.ballots[key] = Ballot(result.output, 1, n)
        else:
            ballot.votes += 1
            ballot.first_n = min(ballot.first_n, n)

    def ranked(self) -> list[Ballot]:
        """Distinct outputs, most votes first (then the lowest first sub-task)."""
        return sorted(self.ballots.values(), key=lambda b: (-b.votes, b.first_n))

    def settled(self) -> bool:
        """Whether the job's outcome can no longer change (it may end early)."""
        left = self.total - self.done
        if left == 0:
            return True
        if self.reduce == "first":
            return self.succeeded > 0
        ranked = self.ranked()
        top = ranked[0].votes if ranked else 0
        if self.reduce == "quorum":
            need = self.quorum or 1
            return top >= need or top + left < need
        if self.reduce == "vote":
            second = ranked[1].votes if len(ranked) > 1 else 0
            return top > second + left  # no one left can catch up or tie
        return False


@dataclass(frozen=True)
class Reduction:
    """How a job ended: its status, value and error."""

    status: JobStatus
    value: Any = None
    error: ErrorInfo | None = None


def reduce(tally: Tally, ending: str = "") -> Reduction:
    """The job's outcome from what it gathered; `ending` is "timed_out" or "cancelled" if forced."""
    if ending == "cancelled":
        return Reduction(
            "cancelled",
            error=ErrorInfo(code=ErrorCode.CANCELLED, message="The job was cancelled."),
        )
    if tally.reduce == "gather":
        value = None if tally.truncated else [tally.outputs.get(n) for n in range(tally.total)]
        if ending == "timed_out":
            return Reduction("timed_out", value, _deadline_error(tally))
        if tally.succeeded == tally.total:
            return Reduction("succeeded", value)
        return Reduction("partial" if tally.succeeded else "failed", value, first_error(tally))
    if tally.reduce == "first":
        if tally.first_success is not None:
            return Reduction("succeeded", tally.outputs.get(tally.first_success))
        if ending == "timed_out":
            return Reduction("timed_out", error=_deadline_error(tally))
        return Reduction("failed", error=first_error(tally))
    if tally.reduce in ("vote", "quorum"):
        return _decide(tally, ending)
    raise ValueError(f"reduce {tally.reduce!r} is decided by its capability")


def _decide(tally: Tally, ending: str) -> Reduction:
    ranked = tally.ranked()
    top = ranked[0] if ranked else None
    if tally.reduce == "quorum":
        need = tally.quorum or 1
        if top is not None and top.votes >= need:
            return Reduction("succeeded", top.output)
        if ending == "timed_out":
            return Reduction("timed_out", error=_deadline_error(tally))
        votes = top.votes if top else 0
        return Reduction(
            "failed",
            error=ErrorInfo(
                code=ErrorCode.NO_QUORUM,
                message=f"Quorum of {need} not reached: at most {votes} of {tally.total} "
                f"sub-tasks agreed ({tally.succeeded} succeeded).",
            ),
        )
    if top is None:
        if ending == "timed_out":
            return Reduction("timed_out", error=_deadline_error(tally))
        return Reduction(
            "failed",
            error=first_error(tally)
            or ErrorInfo(code=ErrorCode.NO_QUORUM, message="No sub-task succeeded to vote."),
        )
    tied = [b for b in ranked if b.votes == top.votes]
    if len(tied) > 1 and tally.tie == "fail":
        if ending == "timed_out":
            return Reduction("timed_out", error=_deadline_error(tally))
        return Reduction(
            "failed",
            error=ErrorInfo(
                code=ErrorCode.NO_QUORUM,
                message=f"Vote tied: {len(tied)} different outputs have {top.votes} vote(s) "
                "each (tie rule: fail).",
            ),
        )
    return Reduction("succeeded", top.output)


def first_error(tally: Tally) -> ErrorInfo | None:
    """The error of the lowest-numbered sub-task that failed."""
    for n in sorted(tally.rows):
        error = tally.rows[n][3]
        if tally.rows[n][0] is not ResultStatus.SUCCEEDED and error is not None:
            return error
    return None


def _deadline_error(tally: Tally) -> ErrorInfo:
    return ErrorInfo(
        code=ErrorCode.DEADLINE_EXCEEDED,
        message=f"The job's deadline passed with {tally.done} of {tally.total} sub-tasks done.",
    )


def outcomes(tally: Tally, ending: str = "", *, with_outputs: bool) -> list[JobOutcome]:
    """One outcome per sub-task in order; those unfinished at a forced end say why."""
    rows: list[JobOutcome] = []
    if ending == "timed_out":
        status, code = ResultStatus.TIMED_OUT, ErrorCode.DEADLINE_EXCEEDED
    else:  # cancelled, or not needed: the job was decided early (first, vote, quorum)
        status, code = ResultStatus.CANCELLED, ErrorCode.CANCELLED
    unfinished = ErrorInfo(code=code, message="The job ended before this sub-task finished.")
    for n in range(tally.total):
        row = tally.rows.get(n)
        if row is None:
            rows.append(JobOutcome(n=n, status=status, error=unfinished))
            continue
        kept = tally.outputs.get(n) if with_outputs else None
        rows.append(
            JobOutcome(
                n=n, status=row[0], agent_id=row[1], attempts=row[2], error=row[3], output=kept
            )
        )
    return rows


_TRIMS: list[Callable[[SwarmJobResult], SwarmJobResult]] = [
    lambda r: r,
    lambda r: r.model_copy(
        update={
            "outcomes": [o.model_copy(update={"output": None}) for o in r.outcomes],
            "truncated": True,
        }
    ),
    lambda r: r.model_copy(
        update={
            "outcomes": [
                o.model_copy(update={"error": ErrorInfo(code=o.error.code, message="")})
                if o.error
                else o
                for o in r.outcomes
            ]
        }
    ),
    lambda r: r.model_copy(
        update={"outcomes": [o for o in r.outcomes if o.status is not ResultStatus.SUCCEEDED]}
    ),
    lambda r: r.model_copy(update={"outcomes": []}),
    lambda r: r.model_copy(update={"value": None}),
]
"""Each step cuts more of a job result: outcomes' outputs, their error texts, the successful
outcomes, every outcome, and last the value."""


def fit_result(
    result: SwarmJobResult, encode: Callable[[SwarmJobResult], bytes]
) -> tuple[SwarmJobResult, bytes]:
    """The result cut as little as `encode` (which raises ServiceError when too large) needs,
    and its bytes: what is stored, and all that may be sent in its name."""
    for trim in _TRIMS:
        result = trim(result)
        try:
            return result, encode(result)
        except ServiceError:
            continue
    return result, encode(result)
