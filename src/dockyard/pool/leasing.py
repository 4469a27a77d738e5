"""Several engines, one pool of berths: spreading berths over engines, and images between them.

With ``engines`` set, a berth goes to the least-loaded engine that answers (fewest live
berths; ties go to the earlier one in the setting), falling over to the next when one is
full or unreachable. Engines of one port scope share one pool (see :attr:`Engine.scope`), so
two daemons on one machine never hand out the same ports; a remote host has its own pool.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from dockyard.dirs import ensure_lock_dir
from dockyard.engine.endpoints import DEFAULT_ENDPOINT, LOCAL, Engine, engines_of, forget_clients, sdk
from dockyard.errors import CorruptRecord, DockerUnavailable, NoFreeBerth
from dockyard.pool.berth import Berth, BerthPool, BerthStatus, Reaper, lock_is_held
from dockyard.pool.lease import read_record
from dockyard.settings import Settings

_POLL_INTERVAL = 0.1  # seconds between sweeps of the pools while waiting for a berth
_RETRY_DOWN_S = 10.0  # seconds before an engine that did not answer is asked again
Probe = Callable[[Engine], str | None]
"""Why ``engine`` cannot take a stack now (None: it can)."""


def probe(engine: Engine) -> str | None:
    """Ping ``engine``; the reason it is unusable, or None."""
    import docker.errors  # noqa: PLC0415 - docker-py is imported only where the engine is called
    import requests.exceptions  # noqa: PLC0415 - docker-py's transport, imported with it

    try:
        sdk(engine).ping()
    except DockerUnavailable as exc:
        return str(exc).splitlines()[0]
    # A cached client whose daemon went away since: docker-py raises requests' own errors for a
    # refused or reset connection, not a DockerException. Forget the client, so that the next
    # probe connects anew instead of reusing a dead one.
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        forget_clients()
        return f"the Docker daemon at {engine} stopped answering ({str(exc).splitlines()[0][:200]})"
    return None


def pools(settings: Settings, engines: Sequence[Engine] | None = None) -> list[BerthPool]:
    """One pool per port scope of ``engines`` (default: the ``engines`` setting, or the current engine)."""
    engines = list(engines) if engines is not None else engines_of(settings.engines)
    scopes = dict.fromkeys(e.scope for e in engines)
    return [BerthPool(settings, [e for e in engines if e.scope == scope]) for scope in scopes]


def statuses(settings: Settings) -> Iterator[tuple[BerthPool, BerthStatus]]:
    """Every berth of every pool of the configured engines, as it is now."""
    for pool in pools(settings):
        for status in pool.statuses():
            yield pool, status


def loads(candidates: Sequence[BerthPool]) -> Counter[str]:
    """Live berths per engine endpoint in ``candidates``."""
    counts: Counter[str] = Counter()
    for pool in candidates:
        for index in range(pool.settings.max_berths):
            # Only held locks and their records: cheap enough to ask on every sweep of the pools.
            if lock_is_held(pool.lock_path(index)):
                try:
                    record = read_record(pool.lock_path(index).with_suffix(".json"))
                except CorruptRecord:
                    record = None
                counts[record.engine if record and record.engine else pool.engines[0].endpoint] += 1
    return counts


class _Answers:
    """Which engines answer ``probe``; one that did not is asked again only after a while.

    An unreachable engine holds no berths, so it ranks first on every sweep of the pools;
    asking it each time would cost a connect attempt (seconds over tcp or ssh) ten times a second.
    """

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.down: dict[Engine, tuple[float, str]] = {}  # engine -> (ask again after, why)

    def problem(self, engine: Engine) -> str | None:
        """Why ``engine`` cannot take a stack (remembered for a while), or None."""
        until, why = self.down.get(engine, (0.0, None))
        if time.monotonic() < until:
            return why
        why = self.probe(engine)
        if why is not None:
            self.down[engine] = (time.monotonic() + _RETRY_DOWN_S, why)
        return why


def acquire_from(
    candidates: Sequence[BerthPool],
    *,
    timeout: float | None = None,
    reaper: Reaper | None = None,
    probe: Probe = probe,
) -> Berth:
    """A free berth of ``candidates`` on the least-loaded usable engine, waiting up to ``timeout``.

    With one engine nothing is probed: its stack's preflight says what is wrong with it.
    Raises :class:`DockerUnavailable` naming every engine when none answers, and
    :class:`NoFreeBerth` (with the holders) when the deadline passes.
    """
    settings = candidates[0].settings
    # The lock directory first: a remote pool's directory inside it must not create it with
    # the umask's mode (0755), which the host pool would then refuse as open to others.
    ensure_lock_dir(settings.lock_dir)
    for pool in candidates:
        ensure_lock_dir(pool.lock_dir)
    order = [(pool, engine) for pool in candidates for engine in pool.engines]
    timeout = settings.acquire_timeout if timeout is None else timeout
    deadline = time.monotonic() + timeout
    answers = _Answers(probe)
    while True:
        reasons: dict[tuple[str, int], str] = {}
        unreachable: dict[Engine, str] = {}
        if len(order) > 1:
            load = loads(candidates)
            ranked = sorted(order, key=lambda pe: load[pe[1].endpoint])  # stable: ties keep the setting's order
        else:
            ranked = order
        tried: set[str] = set()
        for pool, engine in ranked:
            if pool.scope in tried:
                continue  # a pool with no free berth for one engine has none for another
            if len(order) > 1 and (problem := answers.problem(engine)) is not None:
                unreachable[engine] = problem
                continue
            tried.add(pool.scope)
            for index in range(settings.max_berths):
                berth, reason = pool.try_acquire(index, reaper, engine)
                if berth is not None:
                    return berth
                reasons[(pool.scope, index)] = reason
        if len(unreachable) == len(order):
            raise DockerUnavailable(
                "no engine of the pool is reachable:\n" + "\n".join(f"  {e}: {why}" for e, why in unreachable.items()),
                remedy="start those daemons, or fix the `engines` setting (DOCKYARD_ENGINES)",
            )
        if time.monotonic() >= deadline:
            where = ", ".join(str(p.lock_dir) for p in candidates)
            raise NoFreeBerth(
                f"no free berth among {settings.max_berths} in {where} after {timeout:g}s",
                lock_dir=where,
                holders=[
                    *(
                        f"berth {i} ({settings.project_name(i)}{'' if scope == LOCAL else f' on {scope}'}): {r}"
                        for (scope, i), r in reasons.items()
                    ),
                    *(f"engine {e}: unreachable ({why})" for e, why in unreachable.items()),
                ],
            )
        time.sleep(_POLL_INTERVAL)  # polling the pools to a deadline, not waiting for readiness


def acquire(settings: Settings, *, timeout: float | None = None, reaper: Reaper | None = None) -> Berth:
    """A berth on one of the configured engines (see :func:`acquire_from`)."""
    return acquire_from(pools(settings), timeout=timeout, reaper=reaper)


def image_sources(settings: Settings) -> list[Engine]:
    """Where a missing image may be copied from: the configured engines, then this machine's default one."""
    return [*dict.fromkeys([*engines_of(settings.engines), Engine(DEFAULT_ENDPOINT)])]


def share_images(target: Engine, images: Sequence[str], engines: Sequence[Engine]) -> list[str]:
    """Copy ``images`` missing on ``target`` from the first of ``engines`` that has them; those copied.

    ``docker save | docker load`` through the engine APIs: an engine added to the pool gets
    the images (and their build-hash labels, so nothing is rebuilt) without a registry.
    """
    import docker.errors  # noqa: PLC0415 - docker-py is imported only where the engine is called

    sources = [engine for engine in engines if engine != target]
    if not sources:
        return []  # one engine (the usual case): nothing to copy from, so no engine call on every `up`
    client = sdk(target)
    copied = []
    for image in dict.fromkeys(images):
        try:
            client.images.get(image)
            continue
        except docker.errors.ImageNotFound:
            pass
        for source in sources:
            if probe(source) is not None:
                continue
            try:
                stream = sdk(source).images.get(image).save(named=True)
            except docker.errors.ImageNotFound:
                continue
            client.images.load(stream)  # type: ignore[arg-type]  # streamed: docker-py posts any iterable
            copied.append(image)
            break
    return copied
