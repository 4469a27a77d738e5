"""Warm reuse: tests run against the stack `dockyard up` keeps for this project, found through the pool.

`dockyard up` leaves a keeper holding a berth with the stack healthy in it. A test run of the
same project by the same user (plain ``pytest``, ``dockyard run --reuse``) finds that berth
among the pool's lease records and uses its stack instead of starting one: nothing to start,
nothing to tear down. Two rules keep that honest:

* A kept stack is judged before it is used. A service has *drifted* when its compose
  configuration (Compose's own per-service config hash, computed with the override this berth
  would get now), its image, or its build context changed since its container was created.
  Drifted services are rebuilt and recreated in place while no other test run uses the stack;
  while one does, the run takes a berth of its own instead, and says so: recreating a service
  under another run's tests would fail them. A service removed from the compose files is
  never patched around: that run, too, takes a berth of its own.
* Test runs on one kept stack never see each other's rows. A run takes *state slot* 0 (the
  databases the services themselves use) for its duration, and a second run waits for it; an
  xdist worker sharing the stack takes a free slot 1-15 (its own database cloned from the
  template, its own Redis database).

Both are flock(2) locks beside the berth's lock, released by the kernel when their holder
dies, like the berth's own. filelock has no shared mode (its ReadWriteLock is a SQLite
database), so the few lines here call fcntl directly.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dockyard.engine.endpoints import sdk
from dockyard.engine.images import outdated
from dockyard.errors import ComposeError, DockyardError
from dockyard.sessions import keeper_client as keeper
from dockyard.sessions.api import handed_down, running_stack, stack_of
from dockyard.sessions.keep import is_kept_after_failure, keeper_stack
from dockyard.settings import Settings
from dockyard.stack.compose import compose_command
from dockyard.stack.fresh import FreshState
from dockyard.stack.memo import config_hashes
from dockyard.stack.stack import Stack

Say = Callable[[str], None]
STATE_SLOTS = 15  # Redis has 16 databases: db 0 for slot 0, one more for each worker slot
_POLL = 0.05  # seconds between tries of a busy state slot, to the acquire deadline


def _quiet(_: str) -> None:
    """Say nothing."""


@dataclass(frozen=True)
class Drift:
    """One service of a kept stack that no longer matches the project."""

    service: str
    why: str
    removable: bool = True  # False: refreshing cannot fix it (the service left the compose files, its image is gone)

    def __str__(self) -> str:
        return f"{self.service} {self.why}"


class _Flock:
    """One flock(2) on a file beside a berth's lock; its holder is written into the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, *, shared: bool = False, blocking: bool = True) -> bool:
        """Take (or convert to) the lock; False when ``blocking`` is off and it is held."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def note(self, holder: str) -> None:
        """Write who holds it (read by whoever has to wait)."""
        assert self._fd is not None  # noqa: S101 - only after acquire(); narrows the type
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, holder.encode(), 0)

    def holder(self) -> str:
        """Who wrote the lock last (the holder, while it is held)."""
        try:
            return self.path.read_text().strip() or "another test run"
        except OSError:
            return "another test run"

    def release(self) -> None:
        """Drop the lock (closing the file drops it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _this_process() -> str:
    return f"pid {os.getpid()} ({' '.join(sys.argv)[:120]})"


def kept_stack(settings: Settings, progress: Say = _quiet) -> Stack | None:
    """The stack `dockyard up` keeps for this project and this user (the newest, if several); None if none."""
    user = getpass.getuser()
    records = [
        r
        for r in keeper.kept_berths(settings)
        if r.user == user
        and keeper.owner_of(r) is None  # a test session's own stack, not `dockyard up`'s
        and not is_kept_after_failure(keeper.lock_path_of(settings, r), r.lease_id)
    ]
    if not records:
        return None
    record = max(records, key=lambda r: r.started)
    if len(records) > 1:
        others = ", ".join(str(r.index) for r in records if r is not record)
        progress(f"stacks of this project are up in berths {record.index}, {others}: using the newest, {record.index}")
    return stack_of(settings, record, keeper.lock_path_of(settings, record), progress=progress)


def _config_hashes(stack: Stack) -> dict[str, str]:
    """Compose's config hash of each service, with the override this berth would get now."""
    text = stack.model.override(stack.project, stack.berth.port_block, stack.labels)
    return config_hashes(stack.settings, text, lambda: _ask_hashes(stack, text))


def _ask_hashes(stack: Stack, override: str) -> dict[str, str]:
    """``docker compose config --hash '*'`` with ``override`` (a Compose process, ~80 ms)."""
    check = stack.override_path.with_suffix(".check.yml")
    fd = os.open(check, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(override)
    try:
        cmd = [*compose_command(stack.settings, stack.project, [check]), "config", "--hash", "*"]
        out = subprocess.run(
            cmd, capture_output=True, text=True, check=False, cwd=stack.settings.root, env=stack.berth.engine.cli_env()
        )
    finally:
        check.unlink(missing_ok=True)
    if out.returncode != 0:
        raise ComposeError("docker compose config --hash", cmd, out.returncode, stack.redact(out.stderr))
    return dict(line.split(maxsplit=1) for line in out.stdout.splitlines() if len(line.split()) == 2)


def drift(stack: Stack) -> list[Drift]:
    """What of ``stack`` no longer matches the project's compose files, images and build contexts."""
    from docker.errors import NotFound  # noqa: PLC0415 - sdk() imports docker-py anyway

    # The config hashes (a Compose process, ~80 ms, where the memo has none) beside the engine
    # calls. Not the complete configuration: only fresh state reads it (its PostgreSQL
    # credentials), and a test that asks for none should not wait ~130 ms for it.
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = pool.submit(_config_hashes, stack)
        # The SDK alone: `docker compose version` (another Compose process) was checked by the
        # `dockyard up` that started this stack, and the hashes above run Compose anyway.
        client = sdk(stack.berth.engine)
        rows = client.api.containers(all=True, filters={"label": [f"com.docker.compose.project={stack.project}"]})
        running = {
            r["Labels"].get("com.docker.compose.service", "?"): r
            for r in rows
            if r["Labels"].get("com.docker.compose.oneoff") != "True"
        }
        wanted = stack.model.services
        added, removed = sorted(set(wanted) - set(running)), sorted(set(running) - set(wanted))
        found = [Drift(name, "is in the compose files but not in the kept stack") for name in added]
        found += [Drift(name, "was removed from the compose files", removable=False) for name in removed]
        specs = stack.model.build_specs()
        images = {name: svc.get("image") for name, svc in wanted.items()} | {s.service: s.image for s in specs}
        current: dict[str, str | None] = {}
        for name in sorted(set(wanted) & set(running)):
            image = images.get(name)
            try:
                current[name] = client.images.get(image).id if image else running[name].get("ImageID")
            except NotFound:
                current[name] = None
        stale = {s.service: s.image for s in outdated(client, specs, stack.settings)}
        hashes = hashing.result()
    for name, image_id in current.items():
        row = running[name]
        if hashes.get(name) and row["Labels"].get("com.docker.compose.config-hash") != hashes[name]:
            found.append(Drift(name, "has a changed compose configuration"))
        elif image_id is None:
            # Nothing to recreate it from (and no registry to pull from, on many hosts).
            found.append(Drift(name, f"runs {images.get(name)}, which is no longer on the engine", removable=False))
        elif image_id != row.get("ImageID"):
            found.append(Drift(name, f"runs an older build of {images.get(name)}"))
        elif name in stale:
            found.append(Drift(name, f"has a changed build context (since {stale[name]} was built)"))
    return sorted(found, key=lambda d: d.service)


def _users(stack: Stack) -> _Flock:
    return _Flock(stack.berth.lock_path.with_suffix(".users.lock"))


def _refresh_in_place(stack: Stack, users: _Flock, changed: list[Drift], progress: Say) -> bool:
    """Refresh the drifted services while no other run uses the stack; whether it was done."""
    what = "; ".join(map(str, changed))
    where = f"the stack kept in berth {stack.berth.index} ({stack.project})"
    if any(not d.removable for d in changed):
        progress(f"{where} differs from the compose files ({what}): taking a berth of its own")
        return False
    if not users.acquire(blocking=False):
        users.acquire(shared=True)  # converting is not atomic: the shared hold may be gone
        progress(f"{where} changed ({what}), and another test run is using it: taking a berth of its own")
        return False
    try:
        changed = drift(stack)  # a run that held the lock before may have refreshed it already
        if changed:
            services = sorted({d.service for d in changed})
            progress(f"{where} changed ({'; '.join(map(str, changed))}): refreshing {', '.join(services)}")
            stack.write_override()
            stack.refresh(*services)
            _forget_template(stack)
    finally:
        users.acquire(shared=True)
    return True


def _forget_template(stack: Stack) -> None:
    """Drop the fresh-state template: it was taken from what the services migrated before."""
    try:
        fresh = FreshState(stack)
    except DockyardError:
        return  # no PostgreSQL or Redis: no template
    try:
        fresh.drop_template()
    finally:
        fresh.close()


@contextmanager
def reused_stack(settings: Settings, *, progress: Say = _quiet) -> Iterator[Stack | None]:
    """The kept stack of this project, judged and refreshed if need be; None: take a berth of your own.

    The stack is never torn down here. While the block runs, this process is one of the
    stack's users (a shared lock), so no other run recreates a service under it.
    """
    stack = kept_stack(settings, progress)
    if stack is None:
        yield None
        return
    users = _users(stack)
    users.acquire(shared=True)  # waits only while another run refreshes the stack
    try:
        changed = drift(stack)
        if changed and not _refresh_in_place(stack, users, changed, progress):
            users.release()
            yield None
            return
        progress(
            f"using the stack `dockyard up` keeps in berth {stack.berth.index} ({stack.project}); "
            "it stays up after the tests (`dockyard down` takes it down)"
        )
        yield stack
    finally:
        users.release()


def is_reused(stack: Stack) -> bool:
    """Whether ``stack`` is a kept one (so other runs may test against it at the same time)."""
    return keeper.is_keeper(stack.berth.record)


@contextmanager
def session_stack(
    settings: Settings, *, reuse: bool, share: bool, keep: bool = False, progress: Say = _quiet
) -> Iterator[Stack]:
    """The stack a test session runs against, never torn down unless it is the session's own.

    In order: the stack handed down by ``dockyard run`` (``share``: not an xdist worker with
    a berth of its own); the stack kept by ``dockyard up`` (``reuse`` and ``share``); a new
    berth with the stack started in it, torn down at the end (with ``keep``, held by a keeper
    that keeps it if :func:`~dockyard.sessions.keep.mark_kept` is called).
    """
    handed = handed_down(settings) if share else None
    if handed is not None:
        yield handed
        return
    if reuse and share:
        with reused_stack(settings, progress=progress) as warm:
            if warm is not None:
                yield warm
                return
    with keeper_stack(settings, progress=progress) if keep else running_stack(settings, progress=progress) as own:
        yield own


@contextmanager
def state_slot(stack: Stack, *, worker: bool, progress: Say = _quiet) -> Iterator[str | None]:
    """Hold a state slot of a kept stack: None for slot 0 (a run's), ``r<k>`` for an xdist worker's.

    Slot 0 is waited for up to ``acquire_timeout``, naming the run that has it.
    """
    lock_path = stack.berth.lock_path
    if worker:
        for k in range(1, STATE_SLOTS + 1):
            lock = _Flock(lock_path.with_suffix(f".state-{k}.lock"))
            if lock.acquire(blocking=False):
                lock.note(_this_process())
                try:
                    yield f"r{k}"
                finally:
                    lock.release()
                return
            lock.release()
        raise DockyardError(
            f"all {STATE_SLOTS} worker state slots of berth {stack.berth.index} are in use",
            remedy="run fewer xdist workers against the kept stack, or leave out --dockyard-share",
        )
    lock = _Flock(lock_path.with_suffix(".state-0.lock"))
    if not lock.acquire(blocking=False):
        timeout = stack.settings.acquire_timeout
        progress(f"waiting for berth {stack.berth.index}'s state: {lock.holder()} is testing against it")
        deadline = time.monotonic() + timeout
        while not lock.acquire(blocking=False):
            if time.monotonic() > deadline:
                lock.release()
                raise DockyardError(
                    f"berth {stack.berth.index}'s state was not free within {timeout:g}s "
                    f"({lock.holder()} is testing against it)",
                    remedy="wait for that run, or give this one a stack of its own with --dockyard-no-reuse",
                )
            time.sleep(_POLL)  # polling a lock to a deadline, as filelock does
    lock.note(_this_process())
    try:
        yield None
    finally:
        lock.release()


@contextmanager
def fresh_state(stack: Stack, *, worker: str | None) -> Iterator[FreshState]:
    """Per-test fresh state on ``stack`` for this process (``worker``: an xdist worker sharing it).

    On a kept stack, in a state slot of its own (see :func:`state_slot`), touching only its
    own Redis database; on any other, as before: per worker when sharing, else the whole.
    """
    if is_reused(stack):
        with state_slot(stack, worker=worker is not None, progress=stack.progress) as slot:
            fresh = FreshState(stack, worker=slot, redis_db_only=True)
            try:
                fresh.snapshot()
                yield fresh
            finally:
                fresh.close()
        return
    fresh = FreshState(stack, worker=worker)
    try:
        fresh.snapshot()
        yield fresh
    finally:
        fresh.close()
