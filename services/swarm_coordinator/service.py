"""The swarm-coordinator: keeps the agent registry (KV `hub_agents`) true to the heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, ClassVar

from nats.js.errors import KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from swarmhub import codec, metrics, provision, subjects
from swarmhub.config import CoordinatorSettings, RouterSettings
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.registry import count_alive, read_agents
from swarmhub.runtime import Service
from swarmhub.schemas import (
    Ack,
    AgentRecord,
    AgentRegistration,
    Heartbeat,
    JobAccepted,
    JobRequest,
    JobStatusReply,
    LeaveRequest,
    RegisterReply,
    SwarmEvent,
    SwarmJob,
)
from swarmhub.swarm_coordinator.jobs import Jobs

PURGE_DELETES_EVERY_S = 300.0


class SwarmCoordinator(Service):
    """Accepts registrations and heartbeats; expires agents that stop beating."""

    name: ClassVar[str] = "swarm-coordinator"
    description: ClassVar[str] = "Agent membership, liveness and registry."

    def __init__(self, settings: CoordinatorSettings | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings or CoordinatorSettings()
        self.agents: dict[str, AgentRecord] = {}
        self._kv: KeyValue | None = None
        # Agents speak only for the id in their subject (which permissions scope per worker).
        self.add_endpoint(
            "register",
            subjects.SWARM_REGISTER_ALL,
            AgentRegistration,
            self.register,
            template=subjects.TEMPLATES["register"],
            subject_key="agent_id",
        )
        self.add_endpoint(
            "leave",
            subjects.SWARM_LEAVE_ALL,
            LeaveRequest,
            self.leave,
            template=subjects.TEMPLATES["leave"],
            subject_key="agent_id",
        )
        self.jobs = Jobs(self.settings, self.log, lambda: self.agents.values())
        # Jobs are per tenant: the subject names the asking tenant (its permissions allow its
        # own only), and a request may speak for no other.
        for name, subject, model, handler in (
            ("job-submit", subjects.SWARM_JOB_SUBMIT_ALL, SwarmJob, self.submit_job),
            ("job-status", subjects.SWARM_JOB_STATUS_ALL, JobRequest, self.job_status),
            ("job-cancel", subjects.SWARM_JOB_CANCEL_ALL, JobRequest, self.cancel_job),
        ):
            self.add_endpoint(
                name,
                subject,
                model,
                handler,
                template=subjects.TEMPLATES[name.replace("-", "_")],
                subject_key="tenant",
            )
        # Every coordinator sees every heartbeat (no queue group), so a standby's view is warm.
        self.add_endpoint(
            "heartbeat",
            subjects.SWARM_HEARTBEAT_ALL,
            Heartbeat,
            self.heartbeat,
            queue_group=None,
            template=subjects.TEMPLATES["heartbeat"],
            subject_key="agent_id",
        )
        self.leader = False
        self.renewed = 0.0  # monotonic time the lease was last won or renewed
        # agent id -> pid of the incarnation that left for good; its late beats are ignored
        self.left: dict[str, tuple[int | None, float]] = {}

    @property
    def kv(self) -> KeyValue:
        """The registry bucket."""
        assert self._kv is not None, "setup() has not run"
        return self._kv

    async def setup(self) -> None:
        """Provision storage, reload the registry, start the expiry sweeper."""
        await provision.ensure_all(
            self.bus.js,
            results_ttl=RouterSettings().results_ttl,
            replicas=self.settings.replicas,
        )
        self._kv = await self.bus.js.key_value(subjects.AGENTS_BUCKET)
        await self._reload()
        self._lease_kv = await provision.ensure_kv(
            self.bus.js,
            subjects.LEADER_BUCKET,
            ttl=self.settings.lease_ttl,
            replicas=self.settings.replicas,
        )
        await self.jobs.start(self.bus)
        self.spawn_loop(self._lease_loop(), "leader-lease")
        self.spawn_loop(self._sweep_loop(), "sweeper")
        self.spawn_loop(self.jobs.rescan_loop(self.stopping), "job-rescan")

    async def teardown(self) -> None:
        """Stop driving jobs; a stored job resumes on the next leader."""
        await self.jobs.stop()

    async def _lease_loop(self) -> None:
        """Hold (or wait for) the leader lease: a KV key that expires unless renewed."""
        me = codec.pack({"id": self.identity.instance_id})
        revision: int | None = None
        renewed = 0.0
        while not self.stopping.is_set():
            try:
                if revision is None:
                    revision = await self._lease_kv.create(subjects.LEADER_KEY, me)
                    self.renewed = time.monotonic()
                    await self._set_leader(True)
                else:
                    revision = await self._lease_kv.update(subjects.LEADER_KEY, me, last=revision)
                renewed = self.renewed = time.monotonic()
            except KeyWrongLastSequenceError:
                revision = None
                await self._set_leader(False)
            except Exception as exc:
                if self.leader and time.monotonic() - renewed > self.settings.lease_ttl:
                    revision = None
                    await self._set_leader(False)
                self.log.debug("lease_renew_failed", reason=f"{type(exc).__name__}: {exc}")
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=self.settings.lease_ttl / 3)
            except TimeoutError:
                pass
        if self.leader:
            with contextlib.suppress(Exception):
                await self._lease_kv.delete(subjects.LEADER_KEY)

    async def _set_leader(self, leader: bool) -> None:
        if leader == self.leader:
            return
        self.leader = leader
        self.identity.metadata["leader"] = str(leader).lower()
        if leader:
            # A new leader gives every known agent a fresh grace period before expiring it,
            # then repairs whatever the registry lost while nobody (or a stale leader) wrote it.
            now = time.time()
            self.agents = {
                k: v.model_copy(update={"last_seen": now}) for k, v in self.agents.items()
            }
            self.log.info("leader_acquired", agents=len(self.agents))
            with contextlib.suppress(Exception):
                await self._reconcile()
            await self._event("leader", self.identity.instance_id)
            await self.jobs.lead()
        else:
            self.jobs.step_down()
            self.log.warning("leader_lost")

    async def _reload(self) -> None:
        """Adopt agents already in the registry, giving each a fresh grace period."""
        now = time.time()
        for record in await read_agents(self.kv):
            self.agents[record.agent_id] = record.model_copy(update={"last_seen": now})
        metrics.AGENTS_ALIVE.set(count_alive(self.agents.values()))
        if self.agents:
            self.log.info("registry_reloaded", agents=len(self.agents))

    def stats_data(self) -> dict[str, Any]:
        """Membership figures shown in $SRV.STATS."""
        return {
            "agents": len(self.agents),
            "leader": self.leader,
            "jobs_running": len(self.jobs.running),
            "jobs_finished": self.jobs.finished,
        }

    @property
    def leading(self) -> bool:
        """Leader with a lease renewed recently enough that no standby can hold it too."""
        return self.leader and time.monotonic() - self.renewed < self.settings.lease_ttl

    async def _store(self, record: AgentRecord, *, new: bool) -> None:
        # Registry first: if the write fails, memory still differs and the next beat retries it.
        await self.kv.put(record.agent_id, codec.encode(record))
        self.agents[record.agent_id] = record
        metrics.AGENTS_ALIVE.set(count_alive(self.agents.values()))
        if new:
            self.log.info("agent_up", agent_id=record.agent_id, capabilities=record.capabilities)
            await self._event("agent_up", record.agent_id)

    async def _event(self, kind: str, agent_id: str, reason: str = "") -> None:
        try:
            await self.bus.publish(
                subjects.swarm_event(kind),
                SwarmEvent(kind=kind, agent_id=agent_id, reason=reason),  # type: ignore[arg-type]
                template=subjects.TEMPLATES["event"],
            )
        except Exception as exc:  # an event is informative; membership must go on without it
            self.log.warning("event_publish_failed", kind=kind, reason=str(exc))

    async def register(self, reg: AgentRegistration) -> RegisterReply:
        """Add or refresh an agent."""
        self.left.pop(reg.agent_id, None)
        old = self.agents.get(reg.agent_id)
        record = AgentRecord(
            agent_id=reg.agent_id,
            capabilities=reg.capabilities,
            capacity=reg.capacity,
            proficiency=reg.proficiency,
            pid=reg.pid,
            registered_at=old.registered_at if old else time.time(),
        )
        await self._store(record, new=old is None)
        return RegisterReply(
            agent_id=reg.agent_id,
            heartbeat_interval=self.settings.heartbeat_interval,
            expire_after=self.settings.expire_after,
        )

    async def heartbeat(self, beat: Heartbeat) -> None:
        """Refresh liveness; write the registry only when something routers care about changed."""
        if beat.agent_id in self.left and self.left[beat.agent_id][0] == beat.pid:
            return  # a heartbeat that crossed its agent's final leave must not bring it back
        self.left.pop(beat.agent_id, None)
        old = self.agents.get(beat.agent_id)
        state = "draining" if beat.draining else "up"
        if old is not None and old.state == "draining":
            state = "draining"  # a leave is final for this incarnation
        record = AgentRecord(
            agent_id=beat.agent_id,
            capabilities=beat.capabilities,
            capacity=beat.capacity,
            proficiency=beat.proficiency,
            in_flight=beat.in_flight,
            completed=beat.completed,
            failed=beat.failed,
            state=state,
            pid=beat.pid,
            registered_at=old.registered_at if old else time.time(),
        )
        if self.leading and (
            old is None
            or old.state != record.state
            or old.capabilities != record.capabilities
            or old.capacity != record.capacity
            or old.proficiency != record.proficiency
        ):
            await self._store(record, new=old is None)
        else:
            self.agents[beat.agent_id] = record

    async def leave(self, req: LeaveRequest) -> Ack:
        """An agent stops: first it drains (routers stop choosing it), then it is removed."""
        old = self.agents.get(req.agent_id)
        if old is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"Agent {req.agent_id} is not registered.")
        if req.final:
            self.left[req.agent_id] = (old.pid, time.time())
            await self._remove(req.agent_id, "left")
        else:
            # Draining, not deleted: routers skip it for new work but let its in-flight finish.
            await self._store(old.model_copy(update={"state": "draining"}), new=False)
        return Ack()

    async def _remove(self, agent_id: str, reason: str) -> None:
        # Registry first: if the delete fails the agent stays known and the sweeper tries again.
        await self.kv.delete(agent_id)
        self.agents.pop(agent_id, None)
        metrics.AGENTS_ALIVE.set(count_alive(self.agents.values()))
        self.log.info("agent_down", agent_id=agent_id, reason=reason)
        await self._event("agent_down", agent_id, reason)

    async def _reconcile(self) -> None:
        """Make the registry match memory: re-put live agents it lost, drop ones memory has not."""
        try:
            keys = set(await self.kv.keys())
        except NoKeysError:
            keys = set()
        for agent_id, record in list(self.agents.items()):
            if agent_id not in keys:
                await self.kv.put(agent_id, codec.encode(record))
                self.log.warning("registry_repaired", agent_id=agent_id, action="restored")
        for agent_id in keys - self.agents.keys():
            await self.kv.delete(agent_id)
            self.log.warning("registry_repaired", agent_id=agent_id, action="removed")

    async def _sweep_loop(self) -> None:
        interval = min(self.settings.heartbeat_interval, self.settings.expire_after / 3)
        last_purge = last_reconcile = time.time()
        while not self.stopping.is_set():
            now = time.time()
            try:
                await self._sweep_once(now)
                if self.leading and now - last_reconcile > self.settings.expire_after:
                    last_reconcile = now
                    await self._reconcile()
                if self.leading and now - last_purge > PURGE_DELETES_EVERY_S:
                    last_purge = now
                    # Delete markers of departed agents would otherwise pile up in the bucket.
                    await self.kv.purge_deletes(olderthan=int(PURGE_DELETES_EVERY_S))
            except Exception as exc:  # NATS away: try again next round
                self.log.warning("sweep_failed", reason=f"{type(exc).__name__}: {exc}")
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=interval)
            except TimeoutError:
                pass

    async def _sweep_once(self, now: float) -> None:
        cutoff = now - self.settings.expire_after
        for agent_id in list(self.agents):
            record = self.agents.get(agent_id)  # the live record: a beat may have just arrived
            if record is None or record.last_seen >= cutoff:
                continue
            if self.leading:
                await self._remove(agent_id, "missed heartbeats")
            elif not self.leader:
                self.agents.pop(agent_id, None)  # a standby only forgets; the leader writes
        forget = now - 10 * self.settings.expire_after
        self.left = {k: v for k, v in self.left.items() if v[1] >= forget}

    async def submit_job(self, job: SwarmJob) -> JobAccepted:
        """Store a swarm job and run it (the leader runs it; a standby hands it over)."""
        return await self.jobs.submit(job)

    async def job_status(self, req: JobRequest) -> JobStatusReply:
        """A swarm job's progress, or its final result."""
        return await self.jobs.status(req)

    async def cancel_job(self, req: JobRequest) -> JobStatusReply:
        """Cancel a swarm job and its sub-tasks."""
        return await self.jobs.cancel(req)
