"""Where the work of a run happens: in this process, or on the workers of a Ray cluster.

A run is split into tasks. A *worker* is a class whose constructor takes the run's
serialisable description and opens what it needs once (the model and data), and whose
``__call__(task)`` does one task. The local executor makes one worker here (or uses the one
given); the Ray executor makes one actor per CPU of the cluster, each opening the inputs
once, and hands the tasks out. Results are handed over as they finish, so the caller can
save each at once and an interrupted run keeps what it got.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from classwise.errors import RunError, UsageError

EXECUTORS = ("local", "ray")


def check_executor(executor: str) -> None:
    if executor not in EXECUTORS:
        raise UsageError(f"unknown executor {executor!r}; use {' or '.join(EXECUTORS)}")


def execute(worker: type, spec: Any, tasks: Sequence[Any], on_result: Callable[[int, Any], None],
            executor: str = "local", address: str | None = None, local: Any = None) -> None:
    """Do every task with workers ``worker(spec)``; ``on_result(i, value)`` as each ends.

    ``local`` is a worker already made in this process (the local executor uses it instead
    of making one). ``address`` is a running Ray cluster's (``ray://host:port`` or
    ``host:port``); without it a local Ray instance is started.
    """
    check_executor(executor)
    if executor == "local":
        here = local if local is not None else worker(spec)
        for i, task in enumerate(tasks):
            on_result(i, here(task))
        return
    if tasks:
        _on_ray(worker, spec, tasks, on_result, address)


def _on_ray(worker: type, spec: Any, tasks: Sequence[Any],
            on_result: Callable[[int, Any], None], address: str | None) -> None:
    ray = _ray(address)
    from ray.util import ActorPool

    actor = ray.remote(num_cpus=1)(_Indexed)
    size = max(1, min(len(tasks), int(ray.available_resources().get("CPU", 1))))
    pool = ActorPool([actor.remote(worker, spec) for _ in range(size)])
    results = pool.map_unordered(lambda a, job: a.run.remote(*job), list(enumerate(tasks)))
    while True:
        try:
            i, value = next(results)
        except StopIteration:
            return
        except ray.exceptions.RayError as e:
            cause = getattr(e, "cause", None) or e
            if isinstance(cause, UsageError):
                raise cause from None
            raise RunError(f"a Ray worker failed: {str(cause).splitlines()[0]}") from None
        on_result(i, value)


class _Indexed:
    """A Ray actor around one worker: opens it once, returns each result with its index."""

    def __init__(self, worker: type, spec: Any) -> None:
        self.worker = worker(spec)

    def run(self, i: int, task: Any) -> tuple[int, Any]:
        return i, self.worker(task)


def _ray(address: str | None):
    try:
        import ray
    except ImportError:
        raise UsageError("ray is not installed; pip install 'classwise[ray]'") from None
    try:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     ignore_reinit_error=True)
    except Exception as e:  # ray raises ConnectionError, RuntimeError, ...
        raise UsageError(f"cannot reach a Ray cluster at {address or 'local'} "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                         "check --ray-address or start one with 'ray start --head'") from None
    return ray
