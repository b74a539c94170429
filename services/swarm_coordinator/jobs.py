"""Swarm jobs on the durable path: stored when accepted, run as sub-tasks through the task stream,
reduced by the leader coordinator, and resumed from the store by the next leader after a crash.

Jobs are per tenant (the submitter's NATS user, from the request's subject): keys of the jobs
bucket (`hub_jobs`) are `job.<tenant>.<id>` the accepted JobRecord (deleted once the job has its
result), `progress.<tenant>.<id>` the leader's checkpoint (also deleted), `result.<tenant>.<id>`
the one final SwarmJobResult (create-once, so two coordinators can never record two). Keys a hub
from before tenants stored (`<kind>.<id>`) are the open-mode tenant's jobs, run and answered
under those keys, so an upgrade loses none.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, get_args

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from swarmhub import codec, metrics, provision, subjects
from swarmhub.bus import Bus
from swarmhub.client import SwarmClient
from swarmhub.config import CoordinatorSettings
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.schemas import (
    AgentRecord,
    ErrorInfo,
    JobAccepted,
    JobProgress,
    JobRecord,
    JobRequest,
    JobStatus,
    JobStatusReply,
    ResultStatus,
    SwarmJob,
    SwarmJobResult,
    Task,
    TaskResult,
)
from swarmhub.store import create_once, holds_value
from swarmhub.swarm_coordinator.reduce import Tally, fit_result, outcomes, reduce

POLL_EVERY_S = 2.0
"""How often a running job looks in the result store for sub-results whose event it missed."""
POLL_BATCH = 500
EVENT_EVERY_S = 0.25
"""Least time between two progress events of one job."""
CHECKPOINT_EVERY_S = 1.0
RESCAN_EVERY_S = 5.0
PURGE_DELETES_EVERY_S = 300.0
"""How often the leader looks for stored jobs it does not run (a lost adopt notice)."""
FETCHERS = 16
CANCEL_CONCURRENCY = 32
REDUCE_N = -1
DONE_EVENT_ROOM = 512  # bytes a done JobProgress adds around the result it carries


@dataclass(frozen=True)
class JobRef:
    """Which job: a tenant's job id, and whether it is stored under the keys of before tenants."""

    tenant: str
    id: str
    legacy: bool = False

    @classmethod
    def of_key(cls, key: str) -> JobRef:
        """The job a jobs bucket key belongs to."""
        return cls(*subjects.job_of_key(key))

    def key(self, kind: str) -> str:
        """This job's `kind` entry (job, progress, result) in the jobs bucket."""
        if self.legacy:
            return subjects.legacy_job_key(kind, self.id)
        return subjects.job_key(kind, self.tenant, self.id)

    def sub_id(self, n: int | str) -> str:
        """Task id of sub-task `n` ("reduce": the user reduce task)."""
        if self.legacy:
            return subjects.legacy_job_sub_task(self.id, n)
        return subjects.job_sub_task(self.tenant, self.id, n)

    @property
    def event(self) -> str:
        """Subject this job's progress events go out on (its tenant's, as today's jobs')."""
        return subjects.swarm_job_event(self.tenant, self.id)


def refs_of(req: JobRequest) -> list[JobRef]:
    """Where a status or cancel request's job may be stored: the open-mode tenant's jobs may
    still be under the keys of before tenants."""
    tenant = req.tenant or subjects.OPEN_TENANT
    refs = [JobRef(tenant, req.job_id)]
    if tenant == subjects.OPEN_TENANT:
        refs.append(JobRef(tenant, req.job_id, legacy=True))
    return refs


def count_finished(result: SwarmJobResult) -> None:
    """Count a job's final result by status and observe its time from acceptance."""
    metrics.child(metrics.JOBS_FINISHED, result.status).inc()
    metrics.child(metrics.JOB_DURATION, result.status).observe(result.elapsed_ms / 1000)


class Job:
    """One job the leader runs: what it needs to publish its sub-tasks, and its tally."""

    def __init__(self, ref: JobRef, record: JobRecord, keep_bytes: int) -> None:
        self.ref = ref
        self.id = record.job.id
        self.spec = record.job.model_copy(update={"inputs": None})  # inputs go once published
        self.inputs = record.job.inputs
        self.agents = record.agents
        self.total = record.total
        self.accepted_at = record.accepted_at
        self.tally = Tally.for_job(record.job, record.total, keep_bytes)
        self.wake = asyncio.Event()
        self.published = False
        self.changed = True
        self.ending = ""  # "cancelled" when asked to; "external" when another ended it
        self.reduce_result: TaskResult | None = None
        self.driver: asyncio.Task[None] | None = None
        self.checkpointed = False
        self.done: asyncio.Future[SwarmJobResult | None] = (
            asyncio.get_running_loop().create_future()
        )

    def sub_id(self, n: int) -> str:
        """Task id of sub-task `n` (REDUCE_N: the user reduce task)."""
        return self.ref.sub_id("reduce" if n == REDUCE_N else n)

    def progress(self, state: str = "running") -> JobProgress:
        """Where the job stands now."""
        t = self.tally
        return JobProgress(
            job_id=self.id,
            state=state,  # type: ignore[arg-type]
            total=self.total,
            succeeded=t.succeeded,
            failed=t.failed,
            running=self.total - t.done,
            published=self.published,
        )


class Jobs:
    """Accepts, runs, reports and cancels swarm jobs for one coordinator."""

    def __init__(
        self,
        settings: CoordinatorSettings,
        log: Any,
        agents: Callable[[], Iterable[AgentRecord]],
    ) -> None:
        self.settings = settings
        self.log = log
        self.live_agents = agents
        self.leading = False
        self.running: dict[JobRef, Job] = {}
        self.pending: dict[str, tuple[Job, int]] = {}
        # Every task's result event reaches a subscriber: listen only while a job runs here.
        self._results_sub: Subscription | None = None
        self._results_lock = asyncio.Lock()
        self.arrived: asyncio.Queue[str] = asyncio.Queue()
        self.background: set[asyncio.Task[Any]] = set()
        self.finished = 0
        self._bus: Bus | None = None
        metrics.JOBS_RUNNING.set_function(lambda: len(self.running))
        for status in get_args(JobStatus):
            # A counter series that first appears at 1 shows no increase: start each at 0.
            metrics.child(metrics.JOBS_FINISHED, status)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, bus: Bus) -> None:
        """Bind the buckets and listen for sub-results and adopt notices."""
        self._bus = bus
        # Direct gets: a client may read its own tenant's keys, and no one else's (roles.py).
        self.kv: KeyValue = await provision.ensure_kv(
            bus.js,
            subjects.JOBS_BUCKET,
            ttl=self.settings.jobs_ttl,
            replicas=self.settings.replicas,
            direct=True,
        )
        self.results: KeyValue = await bus.js.key_value(subjects.RESULTS_BUCKET)
        self.client = SwarmClient(bus)
        await bus.nc.subscribe(subjects.SWARM_JOB_ADOPT, cb=self._on_adopt)
        for i in range(FETCHERS):
            self._spawn(self._fetch_loop(), f"job-fetch-{i}")

    @property
    def bus(self) -> Bus:
        """The connected bus."""
        assert self._bus is not None, "start() has not run"
        return self._bus

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self.background.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("job_task_failed", task=task.get_name(), reason=repr(task.exception()))

    async def lead(self) -> None:
        """Became leader: resume every stored job that has no result yet."""
        self.leading = True
        self._spawn(self.rescan(), "job-resume")

    def step_down(self) -> None:
        """No longer leader (or stopping): stop driving jobs without ending them."""
        self.leading = False
        for job in list(self.running.values()):
            if job.driver is not None:
                job.driver.cancel()
        self.running.clear()
        self.pending.clear()
        self._spawn(self._stop_hearing_if_idle(), "results-unsubscribe")

    async def stop(self) -> None:
        """Stop everything this coordinator runs for jobs."""
        self.step_down()
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)

    async def rescan_loop(self, stopping: asyncio.Event) -> None:
        """While leader, pick up stored jobs nobody runs (an adopt notice may have been lost)."""
        last_tidy = time.monotonic()
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=RESCAN_EVERY_S)
            if self.leading and not stopping.is_set():
                try:
                    await self.rescan()
                    if time.monotonic() - last_tidy > PURGE_DELETES_EVERY_S:
                        last_tidy = time.monotonic()
                        await self.tidy()
                except Exception as exc:  # NATS away: next round
                    self.log.warning("job_rescan_failed", reason=f"{type(exc).__name__}: {exc}")

    async def tidy(self) -> None:
        """Drop the purge markers finished jobs left behind (the leader, now and then)."""
        await self.kv.purge_deletes(olderthan=int(PURGE_DELETES_EVERY_S))

    async def rescan(self) -> None:
        """Run every stored, unfinished job this leader does not run yet."""
        found = 0
        for key in await self._running_keys():
            try:
                ref = JobRef.of_key(key)
            except ValueError:
                continue
            if ref in self.running or not self.leading:
                continue
            record = await self._record(ref)
            if record is not None and ref not in self.running:
                found += 1
                self._run(ref, record, resume=True)
        if found:
            self.log.info("jobs_resumed", jobs=found)

    async def _running_keys(self) -> list[str]:
        """Keys of stored jobs without a result (an ordered consumer on `job.>`, headers only):
        every tenant's, and those stored before tenants."""
        watcher = await self.kv.watch("job.>", headers_only=True, ignore_deletes=True)
        keys: list[str] = []
        try:
            async for entry in watcher:
                if entry is None:  # the end of what is stored now
                    break
                keys.append(entry.key)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return keys

    async def _on_adopt(self, msg: Msg) -> None:
        """A standby stored a job: the leader runs it."""
        if not self.leading:
            return
        try:
            req = codec.decode(msg.data, JobRequest)
        except ServiceError:
            return
        ref = JobRef(req.tenant or subjects.OPEN_TENANT, req.job_id)
        if ref in self.running:
            return
        record = await self._record(ref)
        if record is not None and self.leading and ref not in self.running:
            self._run(ref, record, resume=True)

    # -- endpoints --------------------------------------------------------------------------

    async def submit(self, job: SwarmJob) -> JobAccepted:
        """Store a tenant's job (its acknowledgement: it will end with exactly one result) and
        run it."""
        ref = JobRef(job.tenant or subjects.OPEN_TENANT, job.id)
        total, agents = self._plan(job)
        record = JobRecord(job=job, accepted_at=time.time(), total=total, agents=agents)
        data = self._check_size(job, record)
        if self.leading and len(self.running) >= self.settings.job_max_running:
            raise ServiceError(
                ErrorCode.BUSY,
                f"{len(self.running)} swarm jobs are running, the most allowed "
                "(SWARMHUB_JOB_MAX_RUNNING); try again when some have finished.",
                retryable=True,
            )
        # No look for a finished job of the same id here (it would cost every job a read):
        # such a job runs again as a new one, and on its end finds and keeps the first result.
        if not await self._create(ref.key("job"), data):
            stored = await self._record(ref)
            return JobAccepted(
                job_id=job.id,
                total=stored.total if stored else total,
                accepted_at=stored.accepted_at if stored else record.accepted_at,
                existing=True,
            )
        if self.leading:
            self._run(ref, record, resume=False)
        else:
            adopt = JobRequest(job_id=job.id, tenant=ref.tenant)
            await self.bus.publish(subjects.SWARM_JOB_ADOPT, adopt)
        return JobAccepted(job_id=job.id, total=total, accepted_at=record.accepted_at)

    def _plan(self, job: SwarmJob) -> tuple[int, list[str]]:
        """How many sub-tasks, and for an ensemble the distinct agents meant to run them."""
        live = sorted(
            a.agent_id
            for a in self.live_agents()
            if job.capability in a.capabilities and a.state == "up"
        )
        if not live:
            raise ServiceError(
                ErrorCode.NO_AGENT, f"No live agent offers capability {job.capability!r}."
            )
        agents: list[str] = []
        if job.inputs is not None:
            total = len(job.inputs)
        else:
            total = job.ensemble or len(live)
            if total > len(live):
                raise ServiceError(
                    ErrorCode.NO_AGENT,
                    f"An ensemble of {total} needs {total} distinct agents; {len(live)} live "
                    f"agent(s) offer {job.capability!r}.",
                    retryable=True,
                )
            agents = random.sample(live, total)
        limit = self.settings.job_max_fan_out
        if total > limit:
            raise ServiceError(
                ErrorCode.BAD_REQUEST,
                f"Swarm job has {total} sub-tasks; at most {limit} are allowed "
                "(SWARMHUB_JOB_MAX_FAN_OUT).",
            )
        if job.reduce == "quorum" and (job.quorum or 0) > total:
            raise ServiceError(
                ErrorCode.BAD_REQUEST,
                f"A quorum of {job.quorum} cannot be reached by {total} sub-tasks.",
            )
        return total, agents

    def _check_size(self, job: SwarmJob, record: JobRecord) -> bytes:
        limit = self.settings.job_max_input_bytes
        for i, one in enumerate(job.inputs if job.inputs is not None else [job.payload]):
            size = len(codec.pack(one))
            if size > limit:
                what = f"Input {i}" if job.inputs is not None else "The payload"
                raise ServiceError(
                    ErrorCode.TOO_LARGE,
                    f"{what} of the swarm job is {size} bytes; at most {limit} are allowed "
                    "(SWARMHUB_JOB_MAX_INPUT_BYTES).",
                )
        data = self.bus.encode(record)
        if len(data) > self.settings.job_max_bytes:
            raise ServiceError(
                ErrorCode.TOO_LARGE,
                f"The swarm job is {len(data)} bytes as stored; at most "
                f"{self.settings.job_max_bytes} are allowed (SWARMHUB_JOB_MAX_BYTES).",
            )
        return data

    async def status(self, req: JobRequest) -> JobStatusReply:
        """Progress of one of the asking tenant's jobs: the leader's own count while it runs
        here, else what the store says."""
        for ref in refs_of(req):
            reply = await self._status(ref)
            if reply is not None:
                return reply
        return JobStatusReply(progress=JobProgress(job_id=req.job_id, state="unknown"))

    async def _status(self, ref: JobRef) -> JobStatusReply | None:
        job = self.running.get(ref)
        if job is not None:
            return JobStatusReply(progress=job.progress())
        result = await self.stored_result(ref)
        if result is not None:
            return JobStatusReply(progress=JobProgress.done(result), result=result)
        checkpoint = await self._get(ref.key("progress"), JobProgress)
        if checkpoint is not None:
            return JobStatusReply(progress=checkpoint)
        record = await self._record(ref)
        if record is not None:
            return JobStatusReply(
                progress=JobProgress(
                    job_id=ref.id, state="accepted", total=record.total, running=record.total
                )
            )
        return None

    async def cancel(self, req: JobRequest) -> JobStatusReply:
        """End one of the asking tenant's jobs as cancelled (unless it has its result already)
        and cancel its sub-tasks."""
        for ref in refs_of(req):
            if await self._cancel(ref):
                return await self._cancelled(ref)
        raise ServiceError(ErrorCode.NOT_FOUND, f"No swarm job {req.job_id} is stored.")

    async def _cancel(self, ref: JobRef) -> bool:
        """Cancel the job if it is running or stored; False when there is no such job."""
        job = self.running.get(ref)
        if job is not None and not job.done.done():
            job.ending = job.ending or "cancelled"
            job.wake.set()
            await asyncio.shield(job.done)
            return True
        if await self.stored_result(ref) is not None:
            return True
        record = await self._record(ref)
        if record is None:
            return False
        # Run elsewhere or not yet adopted: end it in the store; first writer wins, and the
        # leader running it sees the result on its next look and stops.
        ended = Job(ref, record, self.bus.limits.body)
        ended.ending = "cancelled"
        await self._finish(ended)
        return True

    async def _cancelled(self, ref: JobRef) -> JobStatusReply:
        result = await self.stored_result(ref)
        if result is None:
            raise ServiceError(
                ErrorCode.UNAVAILABLE, "The job store did not answer; try again.", retryable=True
            )
        return JobStatusReply(progress=JobProgress.done(result), result=result)

    # -- running a job ----------------------------------------------------------------------

    def _run(self, ref: JobRef, record: JobRecord, *, resume: bool) -> Job:
        job = Job(ref, record, self.bus.limits.body // 2)
        self.running[ref] = job
        for n in range(job.total):
            self.pending[job.sub_id(n)] = (job, n)
        job.driver = self._spawn(self._drive(job, resume), f"job-{job.id}")
        return job

    async def _hear_results(self) -> None:
        """Listen to result events (before any sub-task is published, so none is missed)."""
        async with self._results_lock:
            if self._results_sub is None:
                self._results_sub = await self.bus.nc.subscribe(
                    subjects.tenant_results(self.bus.tenant), cb=self._on_result
                )

    async def _stop_hearing_if_idle(self) -> None:
        """With no job running here, stop receiving every task's result event."""
        async with self._results_lock:
            if not self.running and self._results_sub is not None:
                sub, self._results_sub = self._results_sub, None
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    async def _drive(self, job: Job, resume: bool) -> None:
        try:
            await self._hear_results()
            if resume:
                if await self.stored_result(job.ref) is not None:
                    job.ending = "external"
                    await self._cleanup(job)
                    return
                checkpoint = await self._get(job.ref.key("progress"), JobProgress)
                job.checkpointed = checkpoint is not None
                await self._lookup(job, range(job.total))
                job.published = checkpoint is not None and checkpoint.published
                self.log.info("job_resumed", job_id=job.id, total=job.total, done=job.tally.done)
            if not job.published:
                await self._publish_all(job)
            await self._watch(job)
            if job.ending != "external":
                await self._finish(job)
            else:
                await self._cleanup(job)
        finally:
            for n in [*range(job.total), REDUCE_N]:
                entry = self.pending.get(job.sub_id(n))
                if entry is not None and entry[0] is job:
                    del self.pending[job.sub_id(n)]
            if self.running.get(job.ref) is job:
                del self.running[job.ref]
            if not self.running:
                self._spawn(self._stop_hearing_if_idle(), "results-unsubscribe")
            if not job.done.done():
                job.done.set_result(None)

    def _sub_task(self, job: Job, n: int) -> Task:
        spec = job.spec
        return Task(
            id=job.sub_id(n),
            capability=spec.capability,
            payload=job.inputs[n] if job.inputs is not None else spec.payload,
            priority=spec.priority,
            deadline=spec.deadline,
            attempt_timeout=spec.attempt_timeout,
            max_attempts=spec.max_attempts,
            created_at=job.accepted_at,
            # An ensemble's sub-task n runs on its own agent only, so every vote is a distinct
            # agent's (with a mere preference, a busy agent's sub-task could go to another).
            agent=job.agents[n] if job.agents else None,
        )

    async def _publish_all(self, job: Job) -> None:
        """Put every sub-task without a result into the task stream (deduplicated by id)."""
        todo = iter([n for n in range(job.total) if n not in job.tally.rows])

        async def worker() -> None:
            for n in todo:
                if job.ending:
                    return
                await self._publish(job, self._sub_task(job, n))

        workers = min(self.settings.job_publish_in_flight, job.total)
        await asyncio.gather(*(worker() for _ in range(workers)))
        job.published = True
        job.inputs = None
        job.changed = True
        job.wake.set()

    async def _publish(self, job: Job, task: Task) -> None:
        delay = 0.1
        while True:
            try:
                await self.client.submit(task)
                return
            except ServiceError as exc:
                late = job.spec.deadline is not None and time.time() >= job.spec.deadline
                if not exc.retryable or late or job.ending:
                    n = int(task.id.rsplit("-", 1)[1])
                    failed = TaskResult(
                        task_id=task.id,
                        status=ResultStatus.FAILED,
                        capability=task.capability,
                        error=ErrorInfo(code=exc.code, message=exc.message),
                    )
                    self._count(job, n, failed)
                    return
                self.log.warning("sub_task_publish_retry", task_id=task.id, reason=exc.message)
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)

    async def _watch(self, job: Job) -> None:
        """Wait for sub-results (events, store polls) until the job is settled or must end."""
        now = time.monotonic()
        last_event = last_poll = last_checkpoint = now
        checkpointed = (-1, -1, False)
        while True:
            if job.ending or (job.published and job.tally.settled()):
                break
            deadline = job.spec.deadline
            if deadline is not None and time.time() >= deadline:
                job.ending = "timed_out"
                break
            now = time.monotonic()
            wait = POLL_EVERY_S - (now - last_poll)
            if job.changed:
                wait = min(wait, EVENT_EVERY_S - (now - last_event))
            if deadline is not None:
                wait = min(wait, deadline - time.time())
            job.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.wake.wait(), timeout=max(0.0, wait))
            now = time.monotonic()
            if job.changed and now - last_event >= EVENT_EVERY_S:
                job.changed = False
                last_event = now
                await self._event(job.ref, job.progress())
            state = (job.tally.done, job.tally.succeeded, job.published)
            if now - last_checkpoint >= CHECKPOINT_EVERY_S and state != checkpointed:
                last_checkpoint = now
                checkpointed = state
                job.checkpointed = True
                with contextlib.suppress(Exception):
                    await self.kv.put(job.ref.key("progress"), self.bus.encode(job.progress()))
            if now - last_poll >= POLL_EVERY_S:
                last_poll = now
                if await self.stored_result(job.ref) is not None:
                    job.ending = "external"  # cancelled through another coordinator
                    break
                missing = [n for n in range(job.total) if n not in job.tally.rows]
                await self._lookup(job, missing[:POLL_BATCH])

    async def _finish(self, job: Job) -> None:
        """Reduce, store the one final result (create-once), announce it, tidy up."""
        ending = job.ending
        if job.spec.reduce == "capability" and not ending:
            await self._user_reduce(job)
            ending = job.ending if job.ending in ("cancelled", "timed_out") else ""
        result, data = fit_result(self._result(job, ending), self.bus.encode)
        final = result
        if await self._create(job.ref.key("result"), data, retry_for=30.0):
            self.finished += 1
            count_finished(result)
            self.log.debug("job_finished", job_id=job.id, status=result.status, total=job.total)
        else:  # another coordinator ended it first (a cancel): its result is the one
            final = await self.stored_result(job.ref) or result
        if not job.done.done():
            job.done.set_result(final)
        # The done event carries the result when both fit in one message: waiting clients then
        # need no read of the store.
        carry = final is result and len(data) + DONE_EVENT_ROOM <= self.bus.limits.body
        await self._event(job.ref, JobProgress.done(final, carry=carry))
        await self._cleanup(job)

    def _result(self, job: Job, ending: str) -> SwarmJobResult:
        tally = job.tally
        spec = job.spec
        if spec.reduce == "capability" and ending not in ("cancelled", "timed_out"):
            reduced = job.reduce_result
            if reduced is not None and reduced.status is ResultStatus.SUCCEEDED:
                status, value, error = "succeeded", reduced.output, None
            else:
                status, value = "failed", None
                error = (reduced.error if reduced else None) or ErrorInfo(
                    code=ErrorCode.INTERNAL, message="The reduce task has no result."
                )
        else:
            outcome = reduce(tally, ending if ending in ("cancelled", "timed_out") else "")
            status, value, error = outcome.status, outcome.value, outcome.error
        elapsed = max(0.0, (time.time() - job.accepted_at) * 1000)
        return SwarmJobResult(
            job_id=job.id,
            status=status,  # type: ignore[arg-type]
            capability=spec.capability,
            reduce=spec.reduce,
            value=value,
            error=error,
            total=job.total,
            succeeded=tally.succeeded,
            failed=job.total - tally.succeeded,
            outcomes=outcomes(tally, ending, with_outputs=spec.reduce != "gather"),
            agents=list(tally.agents),
            truncated=tally.truncated,
            elapsed_ms=elapsed,
        )

    async def _user_reduce(self, job: Job) -> None:
        """Run the job's reduce capability on its sub-results and wait for its result."""
        spec = job.spec
        assert spec.reduce_capability is not None
        rows = outcomes(job.tally, with_outputs=True)
        task = Task(
            id=job.sub_id(REDUCE_N),
            capability=spec.reduce_capability,
            payload={"job_id": job.id, "results": [r.model_dump(mode="json") for r in rows]},
            priority=spec.priority,
            deadline=spec.deadline,
            attempt_timeout=spec.attempt_timeout,
            max_attempts=spec.max_attempts,
            created_at=job.accepted_at,
        )
        self.pending[task.id] = (job, REDUCE_N)
        try:
            await self.client.submit(task)
        except ServiceError as exc:
            job.reduce_result = TaskResult(
                task_id=task.id,
                status=ResultStatus.FAILED,
                error=ErrorInfo(code=exc.code, message=f"Reduce task refused: {exc.message}"),
            )
            return
        last_poll = time.monotonic()
        while job.reduce_result is None and not job.ending:
            wait = POLL_EVERY_S
            if spec.deadline is not None:
                wait = min(wait, spec.deadline - time.time())
                if wait <= 0:
                    job.ending = "timed_out"
                    return
            job.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.wake.wait(), timeout=wait)
            if time.monotonic() - last_poll >= POLL_EVERY_S:
                last_poll = time.monotonic()
                await self._fetch(task.id)

    # -- sub-results ------------------------------------------------------------------------

    async def _on_result(self, msg: Msg) -> None:
        """A result event: count it if it is a sub-task of a running job.

        Result events are the result store's own messages, republished by JetStream once
        stored (no process may publish them, roles.py), so the event is as trustworthy as the
        store and saves a read per sub-task. One that does not decode is looked up in the store.
        """
        # Sub-tasks are the coordinator's own (its user is their tenant): their result events
        # come on its tenant's subjects and their results are kept under its tenant's keys.
        _, task_id = subjects.scoped_of(msg.subject)
        entry = self.pending.get(task_id)
        if entry is None or not holds_value(msg):
            return
        try:
            result = self.bus.decode(msg.data, TaskResult)
        except ServiceError:
            self.arrived.put_nowait(task_id)
            return
        if result.task_id == task_id:
            self._count(entry[0], entry[1], result)

    async def _fetch_loop(self) -> None:
        while True:
            task_id = await self.arrived.get()
            try:
                await self._fetch(task_id)
            except Exception as exc:  # the store away: the job's poll finds it later
                self.log.debug("sub_result_fetch_failed", task_id=task_id, reason=repr(exc))

    async def _fetch(self, task_id: str) -> None:
        entry = self.pending.get(task_id)
        if entry is None:
            return
        try:
            stored = await self.results.get(subjects.result_key(self.bus.tenant, task_id))
        except KeyNotFoundError:
            return
        data = stored.value or b""
        self._count(entry[0], entry[1], self.bus.decode(data, TaskResult))

    def _count(self, job: Job, n: int, result: TaskResult) -> None:
        if n == REDUCE_N:
            job.reduce_result = result
            job.wake.set()
            return
        if job.tally.add(n, result):
            self.pending.pop(job.sub_id(n), None)
            job.changed = True
            job.wake.set()

    async def _lookup(self, job: Job, ns: Iterable[int]) -> None:
        """Read the stored results of these sub-tasks (a resume, or a poll for missed events)."""
        todo = iter(list(ns))

        async def worker() -> None:
            for n in todo:
                with contextlib.suppress(KeyNotFoundError, ServiceError):
                    await self._fetch(job.sub_id(n))

        await asyncio.gather(*(worker() for _ in range(FETCHERS * 4)))

    # -- store ------------------------------------------------------------------------------

    async def _create(self, key: str, data: bytes, retry_for: float = 0.0) -> bool:
        """Create-only write; False when the key exists. Retried while the store is away."""
        return await create_once(self.bus, subjects.JOBS_BUCKET, key, data, retry_for)

    async def _get(self, key: str, model: type[Any]) -> Any:
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return self.bus.decode(entry.value, model)

    async def stored_result(self, ref: JobRef) -> SwarmJobResult | None:
        """The job's final result, if it has one."""
        result: SwarmJobResult | None = await self._get(ref.key("result"), SwarmJobResult)
        return result

    async def _record(self, ref: JobRef) -> JobRecord | None:
        record: JobRecord | None = await self._get(ref.key("job"), JobRecord)
        return record

    async def _delete(self, ref: JobRef, *, progress: bool = True) -> None:
        for kind in ("job", "progress") if progress else ("job",):
            with contextlib.suppress(Exception):
                await self.bus.kv_purge(subjects.JOBS_BUCKET, ref.key(kind))

    async def _cleanup(self, job: Job) -> None:
        """Drop the record; cancel sub-tasks the job no longer waits for."""
        unfinished = [job.sub_id(n) for n in range(job.total) if n not in job.tally.rows]
        if job.ending == "external" or not unfinished:
            # whoever ended it elsewhere cancels its sub-tasks
            await self._delete(job.ref, progress=job.checkpointed)
            return
        self._spawn(self._cancel_tasks(job.ref, unfinished), f"job-cancel-{job.id}")

    async def _cancel_tasks(self, ref: JobRef, task_ids: list[str]) -> None:
        todo = iter(task_ids)

        async def worker() -> None:
            for task_id in todo:
                with contextlib.suppress(ServiceError):
                    await self.client.cancel(task_id)

        await asyncio.gather(*(worker() for _ in range(CANCEL_CONCURRENCY)))
        await self._delete(ref)

    async def _event(self, ref: JobRef, progress: JobProgress) -> None:
        try:
            await self.bus.publish(
                ref.event,
                progress,
                template=subjects.TEMPLATES["job_event"],
            )
        except Exception as exc:  # informative only: the store holds the truth
            self.log.warning("job_event_failed", job_id=progress.job_id, reason=str(exc))
