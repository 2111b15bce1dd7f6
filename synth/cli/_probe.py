"""The probe options `synth zoo` and `synth search` share, and the overrides they give."""

from __future__ import annotations

import argparse

__all__ = ["add_probe_arguments", "probe_overrides", "positive_int"]


def positive_int(text: str) -> int:
    """argparse type of counts (batch sizes, rows, samples): a whole number of at least 1, so a 0 or a
    negative count is a usage error (exit 2) instead of an empty probe or a traceback later."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def add_probe_arguments(p: argparse.ArgumentParser, default_data: str) -> None:
    """--probe-data, --probe-batch, --probe-seed and --init-seed; `default_data` says what --probe-data defaults to."""
    p.add_argument("--probe-data", default=None, help="digits, gaussian, photos (crops of the natural photographs in scikit-image's wheel), a folder of images (class subfolders give "
                   f"labels) or a tensor file (.pt/.pth); default: {default_data}")
    p.add_argument("--probe-batch", type=positive_int, default=None, help="probe batch size (default: 64 for small images, 16 at 224 px)")
    p.add_argument("--probe-seed", type=int, default=None, help="which images form the batch (default: 0)")
    p.add_argument("--init-seed", type=int, default=None, help="torch seed of the networks' initial weights (default: 0)")


def probe_overrides(args: argparse.Namespace) -> dict:
    """The Probe fields the user set, by field name."""
    given = {"dataset": args.probe_data, "batch_size": args.probe_batch, "seed": args.probe_seed, "init_seed": args.init_seed}
    return {k: v for k, v in given.items() if v is not None}
