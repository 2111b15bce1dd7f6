"""A progress factory that interrupts a run at a chosen point, as Ctrl-C would, to test resumption."""

from contextlib import contextmanager


def interrupt_at(step: int, calls: int = 1):
    """Progress for run_evolve whose evolution bar raises KeyboardInterrupt the `calls`-th time it is
    set to `step` (the run has then checkpointed that many iterations; step 0 with calls=2: the
    checkpoint of the first population)."""
    seen = {"count": 0}

    @contextmanager
    def progress(description, total):
        def advance(done, new_total=None):
            if description == "evolution" and done == step:
                seen["count"] += 1
                if seen["count"] == calls:
                    raise KeyboardInterrupt

        yield advance

    return progress
