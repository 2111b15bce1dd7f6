"""Scoring architectures for a search: the probe a proxy is scored with, and the scorer that runs
the proxy on each network, in this process or in a pool of worker processes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from synth.pool import imap_jobs, spawn_pool
from synth.probe import Probe, noise_probe
from synth.rundir import RUN_RECORD, read_record
from synth.space import SearchSpace

__all__ = ["Scorer", "search_probe"]


def search_probe(space: SearchSpace, proxy: str, overrides: dict):
    """The probe batch a proxy is scored with: for a run directory evolved on this very space, the
    run's own probe (the proxy is then measured as it was found); otherwise seeded Gaussian noise,
    64 images for small inputs and 16 at 224 px, as for published benchmarks. `overrides` win."""
    probe = None
    record = Path(proxy) / RUN_RECORD
    if record.is_file():
        run = read_record(record, "no run record")
        evolved_on = str((run.get("bench") or {}).get("space", "")).split("+")  # several for a joined run
        if space.name in evolved_on and isinstance(run.get("probe"), dict):
            probe = Probe(**run["probe"])
    if probe is None:
        probe = noise_probe(space)
    return replace(probe, **{k: v for k, v in overrides.items() if v is not None})


class Scorer:
    """Scores architectures with one proxy on one probe batch, in this process or in a pool of
    single-threaded worker processes (networks are independent, so workers scale almost linearly
    where torch's own threads do not)."""

    def __init__(self, proxy: str, space: SearchSpace, probe, device: str, workers: int):
        self.args = (proxy, space, probe, device)
        self.workers = workers
        self.pool = None
        if workers > 1:
            self.pool = spawn_pool(workers, _init_worker, self.args)
        else:
            _init_worker(*self.args, threads=None)

    def scores(self, archs: list[dict], count_flops: list[bool], init_seed: int | None = None, probe_seed: int | None = None):
        """Yield [score or None, seconds, error or None, multiply-adds or None] per architecture, in
        order; multiply-adds are counted where `count_flops` says so (the rest are known already).
        Networks are initialised from `init_seed` and scored on the batch of `probe_seed`, by
        default the probe's own."""
        jobs = [(arch, flops, init_seed, probe_seed) for arch, flops in zip(archs, count_flops)]
        yield from imap_jobs(_score_job, jobs, self.pool)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool = None


_WORKER: dict = {}


def _init_worker(proxy: str, space: SearchSpace, probe, device: str, threads: int | None = 1) -> None:
    """Resolve the proxy and draw the probe batch once per process."""
    import torch

    from synth.zoo.scoring import resolve_proxies

    if threads:
        torch.set_num_threads(threads)
    _WORKER.update(entry=resolve_proxies([proxy], space)[0], space=space, probe=probe, device=device, batches={})
    _batch(probe.seed)  # drawn now, so that a probe that cannot be drawn fails before any scoring


def _batch(seed: int) -> tuple:
    """The probe's (inputs, targets) drawn with batch seed `seed`, drawn once per process."""
    w = _WORKER
    if seed not in w["batches"]:
        inputs, targets = replace(w["probe"], seed=seed).batch(w["space"])
        w["batches"][seed] = (inputs.to(w["device"]), targets.to(w["device"]))
    return w["batches"][seed]


def _score_job(job: tuple) -> list:
    return _score_in_worker(*job)


def _score_in_worker(arch: dict, count_flops: bool = True, init_seed: int | None = None, probe_seed: int | None = None) -> list:
    """The proxy's [score, seconds, error] on the network of `arch` initialised from `init_seed`, on the
    batch of `probe_seed` (None: the probe's own), and its multiply-adds (the zoo's `flops`, counted
    on a meta-device copy) unless the budget check has counted them already, so that the size of
    every scored network is known and counted once."""
    from synth.zoo import get_proxy
    from synth.zoo.scoring import score_network

    w = _WORKER
    probe = w["probe"]
    inputs, targets = _batch(probe.seed if probe_seed is None else probe_seed)
    model = w["space"].build(arch, seed=probe.init_seed if init_seed is None else init_seed).to(w["device"])
    flops = get_proxy("flops")(model, inputs, targets) if count_flops else None
    return score_network(w["entry"], model, inputs, targets) + [flops]
