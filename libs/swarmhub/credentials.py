"""Per-role credentials of a local cluster: made once in its data folder, found by clients.

`swarmhub up` writes `<data dir>/credentials.json` (mode 0600): one user and password per role,
per agent-worker it runs, and per agent slot (a worker started by `swarmhub worker` claims a free
slot: its own user, scoped to the slot's agent id). The CLI and `SwarmClient` read it when their
URL carries no credentials, from `SWARMHUB_DATA_DIR`, else `./.data` (the default data folder of
`swarmhub up`).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from swarmhub.config import servers
from swarmhub.roles import ROLES, Role, worker

CREDENTIALS_FILE = "credentials.json"
AGENT_SLOT = "agent"
"""Role name of the users kept for workers that `swarmhub worker` starts."""
DEFAULT_DATA_DIR = Path(".data")


@dataclass(frozen=True)
class User:
    """One NATS user of a local cluster."""

    name: str
    role: str
    password: str
    agent_id: str | None = None

    def permissions_role(self) -> Role:
        """The role this user's permissions come from (a worker's is scoped to its agent id)."""
        return worker(self.agent_id) if self.agent_id else ROLES[self.role]


@dataclass(frozen=True)
class Credentials:
    """Every user of one local cluster."""

    users: tuple[User, ...]

    def user(self, role: str, index: int = 0) -> User:
        """The `index`-th user of `role`; the first may also be asked for by name (`client-2`)."""
        named = [u for u in self.users if u.name == role and index == 0]
        found = named or [u for u in self.users if u.role == role]
        if index >= len(found):
            raise KeyError(f"No credentials for role {role!r} #{index + 1}.")
        return found[index]

    def authorization(self) -> dict[str, tuple[Role, str]]:
        """Users as the server's authorization block wants them."""
        return {u.name: (u.permissions_role(), u.password) for u in self.users}


def load_or_create(
    data_dir: Path, workers: int, agent_slots: int = 0, clients: int = 1
) -> Credentials:
    """The cluster's credentials, made (0600) the first time and grown when workers are added.

    `workers` users are for the cluster's own agent-workers, `agent_slots` for `swarmhub worker`,
    `clients` for clients (`client`, `client-2`, ...): each client user is a tenant of its own.
    """
    path = data_dir / CREDENTIALS_FILE
    users: list[User] = []
    if path.exists():
        users = [User(**u) for u in json.loads(path.read_text())["users"]]
    have = {u.role for u in users}
    for role in ("router", "coordinator", "cache", "client", "operator"):
        if role not in have:
            users.append(User(role, role, secrets.token_urlsafe(24)))
    existing = sum(1 for u in users if u.role == "client")
    for index in range(existing, clients):
        users.append(User(f"client-{index + 1}", "client", secrets.token_urlsafe(24)))
    for role, wanted in (("worker", workers), (AGENT_SLOT, agent_slots)):
        existing = sum(1 for u in users if u.role == role)
        for _ in range(existing, wanted):
            agent_id = f"agent-{secrets.token_hex(6)}"
            users.append(User(f"{role}-{agent_id}", role, secrets.token_urlsafe(24), agent_id))
    data_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"users": [u.__dict__ for u in users]}, indent=1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)
    return Credentials(tuple(users))


def with_user(url: str, user: User) -> str:
    """`url` (one or a comma list) logging in as `user`."""
    return ",".join(
        f"{scheme or 'nats://'}{user.name}:{user.password}@{host}" for scheme, host in servers(url)
    )


def find(data_dir: Path | None = None) -> Credentials | None:
    """A local cluster's credentials, if a credentials file is where clients look for it."""
    base = data_dir or Path(os.environ.get("SWARMHUB_DATA_DIR") or DEFAULT_DATA_DIR)
    path = base / CREDENTIALS_FILE
    if not path.is_file():
        return None
    return Credentials(tuple(User(**u) for u in json.loads(path.read_text())["users"]))


def client_url(url: str, role: str = "client") -> str:
    """`url` with `role`'s local credentials when it has none and a credentials file is found."""
    if "@" in url:
        return url
    found = find()
    if found is None:
        return url
    try:
        return with_user(url, found.user(role))
    except KeyError:
        return url


class NoFreeSlot(RuntimeError):
    """Every agent slot of the local cluster is held by a running worker."""


def lock_slot(data_dir: Path, user: User) -> int | None:
    """Take the flock holding `user`'s agent slot (`<data dir>/agents/<agent id>.lock`): its
    descriptor, or None when another process holds it."""
    locks = data_dir / "agents"
    locks.mkdir(exist_ok=True)
    fd = os.open(locks / f"{user.agent_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def claim_agent_slot(data_dir: Path | None = None) -> tuple[User, int] | None:
    """A free agent slot of the local cluster and the lock that holds it (None: no such cluster).

    The lock is an flock on `<data dir>/agents/<agent id>.lock`: the kernel frees it when the
    holding process ends, however it ends, so a slot is never leaked. Pass the descriptor on
    (inheritable) to a process that should keep the slot.
    """
    base = data_dir or Path(os.environ.get("SWARMHUB_DATA_DIR") or DEFAULT_DATA_DIR)
    found = find(base)
    if found is None:
        return None
    slots = [u for u in found.users if u.role == AGENT_SLOT]
    for user in slots:
        fd = lock_slot(base, user)
        if fd is not None:
            return user, fd
    raise NoFreeSlot(
        f"All {len(slots)} agent slots of the local cluster in {base} are in use; restart it "
        "with more (`swarmhub up --agent-slots N`) or stop a worker."
    )
