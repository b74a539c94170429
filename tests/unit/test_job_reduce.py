"""A swarm job's pure decisions: tallying sub-results, settling early, and each reduction."""

from __future__ import annotations

from typing import Any

from swarmhub import codec
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.schemas import ErrorInfo, JobOutcome, ResultStatus, SwarmJobResult, TaskResult
from swarmhub.swarm_coordinator.reduce import Tally, fit_result, outcomes, reduce


def ok(output: Any, agent: str = "a1") -> TaskResult:
    return TaskResult(
        task_id="j-0", status=ResultStatus.SUCCEEDED, output=output, agent_id=agent, attempts=1
    )


def failed(message: str = "boom") -> TaskResult:
    error = ErrorInfo(code=ErrorCode.HANDLER_ERROR, message=message)
    return TaskResult(task_id="j-0", status=ResultStatus.FAILED, error=error, attempts=3)


def test_gather_keeps_outputs_in_input_order_and_counts_once() -> None:
    tally = Tally(total=3, reduce="gather")
    assert tally.add(2, ok("c")) and tally.add(0, ok("a"))
    assert not tally.add(0, ok("again")), "a second result for one sub-task is not counted"
    assert not tally.add(7, ok("x")), "a sub-task the job does not have is not counted"
    assert not tally.settled()
    tally.add(1, failed())
    assert tally.settled()
    result = reduce(tally)
    assert result.status == "partial" and result.value == ["a", None, "c"]
    assert result.error is not None and result.error.message == "boom"


def test_gather_that_keeps_too_much_drops_the_outputs_and_says_so() -> None:
    tally = Tally(total=2, reduce="gather", keep_bytes=10)
    tally.add(0, ok("x" * 20))
    tally.add(1, ok("y"))
    assert tally.truncated and reduce(tally).value is None


def test_first_settles_on_the_first_success() -> None:
    tally = Tally(total=5, reduce="first")
    tally.add(3, failed())
    assert not tally.settled()
    tally.add(1, ok("winner"))
    assert tally.settled()
    assert reduce(tally).value == "winner"
    rows = outcomes(tally, with_outputs=True)
    assert [r.status for r in rows][:2] == [ResultStatus.CANCELLED, ResultStatus.SUCCEEDED]


def test_a_vote_settles_once_nobody_left_can_catch_up() -> None:
    tally = Tally(total=5, reduce="vote")
    tally.add(0, ok({"answer": 42}, "a1"))
    tally.add(1, ok({"answer": 42}, "a2"))
    assert not tally.settled(), "2 to 0 with 3 left could still be caught up"
    tally.add(2, ok({"answer": 42}, "a3"))
    assert tally.settled(), "3 to 0 with 2 left cannot"
    assert reduce(tally).value == {"answer": 42}


def test_a_tie_fails_or_takes_the_lowest_by_the_tie_rule() -> None:
    for tie, expected in (("fail", "failed"), ("lowest", "succeeded")):
        tally = Tally(total=2, reduce="vote", tie=tie)
        tally.add(1, ok("late", "a1"))
        tally.add(0, ok("early", "a2"))
        result = reduce(tally)
        assert result.status == expected
        if expected == "succeeded":
            assert result.value == "early", "the tie goes to the lowest sub-task"
        else:
            assert result.error is not None and result.error.code is ErrorCode.NO_QUORUM


def test_an_ensemble_agent_votes_once() -> None:
    tally = Tally(total=3, reduce="vote", one_vote_per_agent=True)
    tally.add(0, ok("lie", "liar"))
    tally.add(1, ok("lie", "liar"))
    tally.add(2, ok("truth", "honest"))
    assert [b.votes for b in tally.ranked()] == [1, 1]


def test_quorum_succeeds_when_reached_and_fails_early_when_out_of_reach() -> None:
    reached = Tally(total=4, reduce="quorum", quorum=2)
    reached.add(0, ok(7))
    reached.add(1, ok(7))
    assert reached.settled() and reduce(reached).value == 7
    hopeless = Tally(total=3, reduce="quorum", quorum=3)
    hopeless.add(0, ok(1))
    hopeless.add(1, ok(2))
    assert hopeless.settled(), "3 agreeing is out of reach with one left"
    result = reduce(hopeless)
    assert result.status == "failed" and result.error is not None
    assert result.error.code is ErrorCode.NO_QUORUM and "Quorum of 3" in result.error.message


def test_forced_endings() -> None:
    tally = Tally(total=2, reduce="gather")
    tally.add(0, ok("a"))
    cancelled = reduce(tally, "cancelled")
    assert cancelled.status == "cancelled" and cancelled.error is not None
    timed_out = reduce(tally, "timed_out")
    assert timed_out.status == "timed_out" and timed_out.error is not None
    assert timed_out.error.code is ErrorCode.DEADLINE_EXCEEDED
    rows = outcomes(tally, "timed_out", with_outputs=False)
    assert rows[1].status is ResultStatus.TIMED_OUT and rows[0].output is None


def test_a_result_too_large_is_cut_and_the_bytes_are_of_the_cut_one() -> None:
    # Given a job result whose outcomes' outputs make it larger than 10 KB
    rows = [
        JobOutcome(n=n, status=ResultStatus.SUCCEEDED, output={"pad": "x" * 2_000})
        for n in range(8)
    ]
    result = SwarmJobResult(
        job_id="j1",
        status="succeeded",
        capability="echo",
        reduce="first",
        value={"ok": 1},
        total=8,
        succeeded=8,
        failed=0,
        outcomes=rows,
    )

    def encode(r: SwarmJobResult) -> bytes:
        data = codec.pack(r.model_dump(mode="json"))
        if len(data) > 10_000:
            raise ServiceError(ErrorCode.TOO_LARGE, "too large")
        return data

    # When it is fitted
    fitted, data = fit_result(result, encode)
    # Then the outputs went first, the value stayed, the cut is marked
    assert fitted.truncated and fitted.value == {"ok": 1}
    assert [o.output for o in fitted.outcomes] == [None] * 8
    # and the bytes are those of the cut result, the one to store and to announce
    assert data == encode(fitted)


def test_a_result_that_fits_is_left_whole() -> None:
    result = SwarmJobResult(
        job_id="j1",
        status="succeeded",
        capability="echo",
        reduce="gather",
        value=[1],
        total=1,
        succeeded=1,
        failed=0,
    )
    fitted, _ = fit_result(result, lambda r: codec.pack(r.model_dump(mode="json")))
    assert fitted == result and not fitted.truncated
