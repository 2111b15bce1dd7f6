"""Process pools: where synth runs independent jobs (training a network, scoring one) in parallel.

Both `synth bench build` and `synth search` spread work over single-threaded worker processes, since
networks are independent and one process per core scales where torch's own threads do not. Workers
are spawned, never forked: a forked child would inherit torch's thread pools and locks mid-state.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Callable, Iterable, Iterator

__all__ = ["spawn_pool", "imap_jobs"]


def spawn_pool(workers: int, initializer: Callable | None = None, initargs: tuple = ()):
    """A pool of `workers` spawned processes, each running `initializer(*initargs)` once first."""
    return mp.get_context("spawn").Pool(workers, initializer=initializer, initargs=initargs)


def imap_jobs(fn: Callable, jobs: Iterable, pool=None, ordered: bool = True) -> Iterator:
    """`fn(job)` for every job, lazily: in this process without a `pool`, else in the pool (in job
    order when `ordered`, else as each finishes). `fn` must be module-level so it pickles."""
    if pool is None:
        return map(fn, jobs)
    return pool.imap(fn, jobs) if ordered else pool.imap_unordered(fn, jobs)
