"""The raw baseline's pure parts: message shapes, steps, figures and the --baseline options."""

from __future__ import annotations

import pytest

from swarmhub.loadgen.__main__ import build_parser
from swarmhub.loadgen.baseline import BaselineConfig, concurrency_list, hub_task_bytes
from swarmhub.loadgen.drivers import DriveStats
from swarmhub.loadgen.raw import protocol
from swarmhub.loadgen.raw.pipe import decode_line
from swarmhub.loadgen.recorder import Recorder
from swarmhub.loadgen.steps import Step, baseline_steps, cpu_step, figures


@pytest.mark.parametrize("size", [60, 90, 120, 226, 400, 5000])
def test_tasks_are_padded_to_the_size_asked(size: int) -> None:
    data = protocol.task_message("abc-1", {"loadgen": "abc-1"}, size)
    assert size - 2 <= len(data) <= size
    task = protocol.unpack(data)
    assert (task["id"], task["capability"], task["payload"]) == (
        "abc-1",
        "echo",
        {"loadgen": "abc-1"},
    )


def test_a_message_longer_than_the_size_is_left_as_it_is() -> None:
    data = protocol.task_message("abc-1", {"text": "y" * 100}, 10)
    assert "pad" not in protocol.unpack(data)


def test_a_result_echoes_the_payload_on_the_tasks_own_subject() -> None:
    task = {"id": "r1-7", "capability": "echo", "payload": {"a": 1}, "pad": "xx"}
    result = protocol.unpack(protocol.result_message(task))
    assert result == {"task_id": "r1-7", "status": "succeeded", "output": {"a": 1}}
    subject = protocol.result_subject("r1-7")
    assert protocol.task_id_of(subject) == "r1-7"
    assert subject.startswith(protocol.RESULT_ALL[:-1])


def test_the_raw_stream_is_a_durable_work_queue_like_swarmhubs() -> None:
    stream = protocol.stream_config()
    assert stream.retention is not None and stream.retention.value == "workqueue"
    assert stream.storage is not None and stream.storage.value == "file"
    assert stream.subjects == [protocol.TASK_SUBJECT]
    assert protocol.consumer_config().durable_name == protocol.CONSUMER
    assert protocol.FETCH_BATCH == 256


def test_decode_line() -> None:
    assert decode_line(b"") is None
    assert decode_line(b'{"ready": true}\n') == {"ready": True}
    with pytest.raises(ValueError):
        decode_line(b"[1, 2]\n")


def test_the_default_steps_and_the_cpu_step() -> None:
    steps = BaselineConfig().steps()
    assert [s.name for s in steps] == ["closed-1", "closed-64", "closed-512", "open-1000"]
    assert cpu_step(steps).name == "closed-64"
    assert cpu_step(baseline_steps([1, 8], 50.0, 1.0, 0.0)).name == "closed-8"
    with pytest.raises(ValueError):
        Step(concurrency=1, rate=10.0)


def test_step_figures_count_warm_up_tasks_as_done() -> None:
    recorder = Recorder(measure_start=1.0)
    for i in range(5):  # warm-up
        recorder.record("task", 0.1 * i, 0.1 * i, 0.1 * i + 0.01)
    for i in range(10):
        t = 1.0 + 0.1 * i
        recorder.record("task", t, t, t + 0.002)
    recorder.record("task", 2.5, 2.5, 3.0, "timeout", "late")
    fig = figures(recorder, DriveStats(sent=16))
    assert (fig["measured"], fig["ok"], fig["errors"]) == (11, 10, 1)
    assert fig["tasks_done"] == 16
    assert fig["errors_by_code"] == {"timeout": 1}
    assert fig["latency_ms"]["count"] == 10
    assert fig["throughput_per_s"] > 0


def test_baseline_options() -> None:
    assert concurrency_list("1, 64,512") == (1, 64, 512)
    with pytest.raises(ValueError, match="--baseline-concurrency"):
        concurrency_list("1,lots")
    with pytest.raises(ValueError):
        BaselineConfig(concurrencies=(0,))
    with pytest.raises(ValueError):
        BaselineConfig(seconds=0)
    args = build_parser().parse_args(
        ["bench", "--baseline", "--baseline-seconds", "1", "--baseline-concurrency", "1,8"]
    )
    assert (args.baseline, args.baseline_seconds, args.baseline_concurrency) == (True, 1.0, "1,8")
    assert args.url is None  # so --baseline knows to start its own cluster
    assert args.memory_warmup_tasks == 1000


def test_raw_tasks_are_as_big_as_swarmhubs() -> None:
    size = hub_task_bytes(BaselineConfig())
    assert 100 < size < 1000
