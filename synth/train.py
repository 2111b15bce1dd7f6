"""Real training for ground truth: one recipe, one architecture, one seed."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["Recipe", "train_and_evaluate"]


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a training run besides architecture and seed."""

    dataset: str = "digits"
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

    def to_dict(self) -> dict:
        return asdict(self)


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * base * (1.0 + math.cos(math.pi * progress))


def _optimizer(model, recipe: Recipe):
    import torch

    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay)
    raise ValueError(f"recipe optimizer {recipe.optimizer!r}: choose adamw or sgd")


def train_and_evaluate(space, arch: dict, seed: int, recipe: Recipe, data=None) -> float:
    """Top-1 test accuracy (%) of `arch` trained from scratch with `recipe` and `seed`.

    `seed` sets the initial weights and the order of mini-batches.
    """
    import torch
    import torch.nn.functional as F

    from synth.datasets import load_dataset

    if data is None:
        data = load_dataset(recipe.dataset, recipe.split_seed, recipe.test_fraction)
    model = space.build(arch, seed=seed)
    optimizer = _optimizer(model, recipe)
    generator = torch.Generator().manual_seed(seed)
    n = len(data.y_train)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total, warmup = recipe.epochs * steps_per_epoch, recipe.warmup_epochs * steps_per_epoch
    step = 0
    model.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total, warmup, recipe.lr)
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx], label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            step += 1
    model.eval()
    with torch.no_grad():
        correct = sum(
            (model(data.x_test[i : i + 512]).argmax(1) == data.y_test[i : i + 512]).sum().item()
            for i in range(0, len(data.y_test), 512)
        )
    return 100.0 * correct / len(data.y_test)
