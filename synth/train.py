"""Real training for ground truth: one recipe, one architecture, one seed."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from synth.datasets import load_dataset
from synth.errors import InputError
from synth.resources import read_yaml

__all__ = ["Recipe", "train_and_evaluate", "training_data", "checked_device", "OPTIMIZERS"]

OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a training run besides architecture and seed.

    Checked when made (InputError naming the field), so a bad value fails before any training.
    """

    dataset: str = "digits"  # a packaged dataset, a folder of images or a tensor file (synth.datasets.load_dataset)
    split_seed: int = 0  # seeded train/test split of the dataset
    test_fraction: float = 0.3
    epochs: int = 25
    batch_size: int = 64
    optimizer: str = "adamw"  # adamw | sgd (momentum 0.9, Nesterov)
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 2  # linear warm-up, then cosine decay to zero, per step
    label_smoothing: float = 0.0
    grad_clip: float = 1.0

    def __post_init__(self):
        problems = _recipe_problems(self.to_dict())
        if problems:
            raise InputError(f"recipe: {'; '.join(problems)}")
        for f in fields(self):  # 1 and 1.0 are the same learning rate: keep one spelling for the record and its digest
            if _FIELD_TYPES[f.name] is float:
                object.__setattr__(self, f.name, float(getattr(self, f.name)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_file(cls, path) -> "Recipe":
        """The recipe in a YAML or JSON file: a mapping of Recipe fields; those left out keep their defaults.

        InputError naming the file and the field for an unknown field, a wrong type or a bad value.
        """
        if not Path(path).is_file():
            raise InputError(f"{path}: recipe file not found")
        _, raw = read_yaml(str(path), "data", InputError)  # YAML reads JSON too; an existing path is read as given
        names = [f.name for f in fields(cls)]
        if not isinstance(raw, dict):
            raise InputError(f"{path}: a recipe file must be a mapping of fields ({', '.join(names)})")
        unknown = sorted(str(k) for k in raw if k not in names)
        if unknown:
            raise InputError(f"{path}: unknown recipe field(s) {', '.join(map(repr, unknown))}; known: {', '.join(names)}")
        try:
            return cls(**raw)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None


_RULES = {  # field -> (test of a value of the right type, what the value must be)
    "dataset": (lambda v: bool(v.strip()), "a dataset name or path"),
    "test_fraction": (lambda v: 0 < v < 1, "between 0 and 1 (exclusive)"),
    "epochs": (lambda v: v >= 1, "at least 1"),
    "batch_size": (lambda v: v >= 1, "at least 1"),
    "optimizer": (lambda v: v in OPTIMIZERS, " or ".join(OPTIMIZERS)),
    "lr": (lambda v: v > 0, "positive"),
    "weight_decay": (lambda v: v >= 0, "0 or more"),
    "warmup_epochs": (lambda v: v >= 0, "0 or more"),
    "label_smoothing": (lambda v: 0 <= v < 1, "at least 0 and below 1"),
    "grad_clip": (lambda v: v >= 0, "0 or more (0 turns clipping off)"),
}
_FIELD_TYPES = {f.name: type(f.default) for f in fields(Recipe)}
_TYPE_NAMES = {str: "text", int: "a whole number", float: "a number"}


def _recipe_problems(values: dict) -> list[str]:
    """One message per recipe field in `values` whose value has the wrong type or breaks its rule."""
    problems = []
    for name, value in values.items():
        kind = _FIELD_TYPES[name]
        if not _is_of(value, kind):
            problems.append(f"field {name!r} must be {_TYPE_NAMES[kind]}, got {value!r}{_yaml_hint(value, kind)}")
        elif kind is float and not math.isfinite(value):
            problems.append(f"field {name!r} must be finite, got {value!r}")
        elif name in _RULES and not _RULES[name][0](value):
            problems.append(f"field {name!r} must be {_RULES[name][1]}, got {value!r}")
    return problems


def _is_of(value, kind: type) -> bool:
    """Whether `value` may stand for a field of type `kind`: an int is a float, a bool is neither."""
    return not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else kind)


def _yaml_hint(value, kind: type) -> str:
    """Why a number may have arrived as text: PyYAML (YAML 1.1) reads 2e-3 as a string."""
    if kind is not float or not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return " (YAML reads numbers like 2e-3 as text: write 2.0e-3)"


def checked_device(device: str) -> str:
    """`device` ('cpu', 'cuda' or 'cuda:N') if torch can use it; InputError otherwise, before any training starts."""
    import torch

    if device == "cpu":
        return device
    if not device.startswith("cuda"):
        raise InputError(f"device {device!r}: choose cpu or cuda")
    if not torch.cuda.is_available():
        raise InputError(f"device {device!r}: torch sees no CUDA GPU here (torch {torch.__version__}); use --device cpu")
    return device


def training_data(recipe: Recipe, space):
    """The recipe's dataset split and shaped for `space`'s networks (their image size and channels).

    InputError naming the data when its labels do not fit the networks' classes.
    """
    fixed = space.fixed
    size, channels = fixed.get("img_size", 224), fixed.get("in_chans", 3)
    data = load_dataset(recipe.dataset, recipe.split_seed, recipe.test_fraction, size, channels)
    classes = fixed.get("num_classes", 1000)
    if data.num_classes > classes:
        raise InputError(f"{recipe.dataset}: labels span 0..{data.num_classes - 1}; "
                         f"the networks of space {space.name!r} have {classes} classes")
    return data


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * base * (1.0 + math.cos(math.pi * progress))


def _optimizer(model, recipe: Recipe):
    """The recipe's optimizer (adamw, or sgd with Nesterov momentum 0.9); Recipe has checked the name."""
    import torch

    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay)


def train_and_evaluate(space, arch: dict, seed: int, recipe: Recipe, data=None, device: str = "cpu") -> float:
    """Top-1 test accuracy (%) of `arch` trained from scratch with `recipe` and `seed` on `device`.

    `seed` sets the initial weights and the order of mini-batches; both are drawn on the CPU
    whatever the device, so a CUDA run sees the same initial weights and batches.
    """
    import torch
    import torch.nn.functional as F

    if data is None:
        data = training_data(recipe, space)
    x_train, y_train, x_test, y_test = (t.to(device) for t in (data.x_train, data.y_train, data.x_test, data.y_test))
    model = space.build(arch, seed=seed).to(device)
    optimizer = _optimizer(model, recipe)
    generator = torch.Generator().manual_seed(seed)
    n = len(y_train)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total, warmup = recipe.epochs * steps_per_epoch, recipe.warmup_epochs * steps_per_epoch
    step = 0
    model.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n, recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total, warmup, recipe.lr)
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx], label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            step += 1
    model.eval()
    with torch.no_grad():
        correct = sum(
            (model(x_test[i : i + 512]).argmax(1) == y_test[i : i + 512]).sum().item()
            for i in range(0, len(y_test), 512)
        )
    return 100.0 * correct / len(y_test)
