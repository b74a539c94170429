"""Property tests of the size limits: what the checks accept fits the server's max_payload,
headers counted as nats-py really writes them."""

from __future__ import annotations

import asyncio
import string
from collections.abc import Iterator

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NATS

from swarmhub import codec
from swarmhub.bus import error_body, error_headers, make_headers
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.limits import (
    DISPATCH_ROOM,
    HEADER_ROOM,
    MAX_ERROR_MESSAGE,
    MIN_MAX_PAYLOAD,
    TASK_ENVELOPE_ROOM,
    Limits,
    cut,
    headers_size,
)
from swarmhub.schemas import MAX_BATCH, ErrorInfo, RunBatch, RunRequest, Task
from tests.wire_strategies import FAST, valid_messages

HEADER_KEY = st.text(alphabet=string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1)
HEADER_VALUE = st.text(max_size=200)  # any text: non-ASCII, CR/LF, surrounding blanks
HEADERS = st.dictionaries(HEADER_KEY, HEADER_VALUE, max_size=6)
SERVERS = st.integers(MIN_MAX_PAYLOAD, 2 * 1024 * 1024)
LIMITS = st.builds(Limits.for_server, SERVERS, st.none() | st.integers(1, 64 * 1024 * 1024))
ERRORS = st.builds(
    ServiceError,
    st.sampled_from(list(ErrorCode)),
    st.text(max_size=50)
    | st.builds(lambda c, n: c * n, st.characters(codec="utf-8"), st.integers(0, 20_000)),
    retryable=st.booleans(),
)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def wire_header_bytes(loop: asyncio.AbstractEventLoop, headers: dict[str, str]) -> int:
    """The size of the header block nats-py itself puts in the HPUB it sends."""
    sent: list[bytes] = []

    async def capture(cmd: bytes, priority: bool = False) -> None:
        sent.append(cmd)

    nc = NATS()
    nc._send_command = capture  # type: ignore[method-assign]
    loop.run_until_complete(nc._send_publish("s", "", b"", 0, headers))
    op, *_, header_len, _total = sent[0].split(b"\r\n", 1)[0].split()
    assert op == b"HPUB"
    return int(header_len)


@FAST
@given(HEADERS)
def test_headers_are_counted_at_least_as_nats_py_writes_them(
    loop: asyncio.AbstractEventLoop, headers: dict[str, str]
) -> None:
    assume(headers)
    real = wire_header_bytes(loop, headers)
    assert headers_size(headers) >= real
    if all(
        v == v.strip() and v.isascii() and "\r" not in v and "\n" not in v for v in headers.values()
    ):
        assert headers_size(headers) == real


@FAST
@given(LIMITS, st.integers(-HEADER_ROOM, 2 * HEADER_ROOM), HEADERS)
def test_what_check_fits_accepts_fits_the_server(
    loop: asyncio.AbstractEventLoop, limits: Limits, below: int, headers: dict[str, str]
) -> None:
    size = max(0, limits.max_payload - below)  # around the server's limit
    data = bytes(size)
    try:
        limits.check_fits("Reply", data, headers)
    except ServiceError as exc:
        assert exc.code is ErrorCode.TOO_LARGE
        assert len(exc.message) < 200
        assert size + headers_size(headers) > limits.max_payload
    else:
        real = wire_header_bytes(loop, headers) if headers else 0
        assert size + real <= limits.max_payload


@FAST
@given(SERVERS, st.none() | st.integers(-(2**31), 2**40))
def test_limits_leave_header_and_task_room_under_every_server(
    max_payload: int, configured: int | None
) -> None:
    limits = Limits.for_server(max_payload, configured)
    assert limits.max_payload == max_payload
    assert limits.body + HEADER_ROOM <= max_payload
    assert limits.task == limits.body - TASK_ENVELOPE_ROOM >= TASK_ENVELOPE_ROOM
    if configured is not None and configured >= 2 * TASK_ENVELOPE_ROOM:
        assert limits.body <= configured


@FAST
@given(st.integers(0, MIN_MAX_PAYLOAD - 1))
def test_a_server_below_the_minimum_is_refused(max_payload: int) -> None:
    with pytest.raises(ValueError, match="too small"):
        Limits.for_server(max_payload)


@FAST
@given(LIMITS, ERRORS)
def test_every_error_reply_fits_the_smallest_server(
    loop: asyncio.AbstractEventLoop, limits: Limits, exc: ServiceError
) -> None:
    headers = error_headers(exc)
    body = error_body(exc)
    assert headers_size(headers) <= HEADER_ROOM
    assert wire_header_bytes(loop, headers) <= HEADER_ROOM
    assert len(body) <= limits.body
    limits.check_fits("Reply", body, headers)
    info = codec.decode(body, ErrorInfo)
    assert info.code is exc.code and len(info.message) <= MAX_ERROR_MESSAGE


@FAST
@given(LIMITS, valid_messages(Task), st.integers(1, 20))
def test_a_body_within_the_limit_with_request_headers_fits_the_server(
    loop: asyncio.AbstractEventLoop, limits: Limits, task: Task, attempt: int
) -> None:
    # Headers a message travels with: content type, a message id (a retry's `<id>.a<n>`) and
    # a trace context.
    trace = {
        "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        "tracestate": "k=" + "v" * 250,
    }
    headers = make_headers(f"{task.id}.a{attempt}", trace)
    assert headers_size(headers) <= HEADER_ROOM
    assert wire_header_bytes(loop, headers) <= HEADER_ROOM
    limits.check_fits("Request", bytes(limits.body), headers)


@st.composite
def sized_tasks(draw: st.DrawFn, limits: Limits, retried: bool) -> Task:
    """A task whose encoded size is within a few hundred bytes of what check_task allows."""
    task = draw(valid_messages(Task))
    if retried:
        task = task.model_copy(
            update={
                "attempt": draw(st.integers(1, 20)),
                "last_error": ErrorInfo(code=ErrorCode.TIMEOUT, message=cut("é" * 5000)),
                "tried_agents": ["a" * 128] * 32,
            }
        )
    target = limits.body - DISPATCH_ROOM if retried else limits.task
    base = len(codec.encode(task.model_copy(update={"payload": {"blob": b""}})))
    blob = max(0, target - base + draw(st.integers(-300, 300)))
    return task.model_copy(update={"payload": {"blob": b"x" * blob}})


@settings(FAST, max_examples=60)
@given(st.data())
def test_a_task_check_task_accepts_is_dispatched_within_the_server(
    loop: asyncio.AbstractEventLoop, data: st.DataObject
) -> None:
    limits = data.draw(
        st.builds(Limits.for_server, st.integers(MIN_MAX_PAYLOAD, 96 * 1024), st.none()),
        label="limits",
    )
    retried = data.draw(st.booleans(), label="retried")
    task = data.draw(sized_tasks(limits, retried), label="task")
    size = len(codec.encode(task))
    try:
        limits.check_task(size, retried=task.attempt > 0)
    except ServiceError as exc:
        assert exc.code is ErrorCode.TOO_LARGE
        return
    # The dispatch wrapper (one attempt, or one item of a batch) stays within the body limit.
    request = RunRequest(task=task, attempt=task.attempt + 1)
    single = codec.encode(request, max_bytes=limits.body)
    batch = codec.encode(RunBatch(items=[request]), max_bytes=limits.body)
    assert len(batch) <= size + DISPATCH_ROOM
    headers = make_headers(f"{task.id}.a{task.attempt + 1}")
    limits.check_fits("Dispatch", single, headers)
    assert len(single) + wire_header_bytes(loop, headers) <= limits.max_payload


@FAST
@given(valid_messages(Task), st.integers(1, 20), st.integers(1, MAX_BATCH))
def test_the_dispatch_wrappers_add_at_most_the_dispatch_room(
    task: Task, attempt: int, count: int
) -> None:
    size = len(codec.encode(task))
    request = RunRequest(task=task, attempt=attempt)
    assert len(codec.encode(request)) <= size + DISPATCH_ROOM
    # A batch shares its envelope among its items.
    batch = len(codec.encode(RunBatch(items=[request] * count)))
    assert batch <= count * (size + DISPATCH_ROOM)


@FAST
@given(
    st.text() | st.builds(lambda c, n: c * n, st.characters(), st.integers(0, 10_000)),
    st.integers(32, 4096),
)
def test_cut_text_stays_within_its_limit(text: str, limit: int) -> None:
    out = cut(text, limit)
    assert len(out) <= limit
    assert out == text if len(text) <= limit else out.startswith(text[: limit - 16])
