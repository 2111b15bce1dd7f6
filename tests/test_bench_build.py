"""`synth bench build` on any architectures, dataset, recipe and device: a real kill and resume,
recipe files, architecture files, user datasets, and refusing to mix recipes."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from synth.bench import build_benchmark, load_arch_file, load_benchmark
from synth.cli import main
from synth.datasets import data_digest, load_dataset
from synth.errors import InputError
from synth.space import arch_key, load_space
from synth.train import Recipe, train_and_evaluate, training_data

TINY = [
    {"embed_dim": 8, "depth": 1, "mlp_ratio": [1.0], "num_heads": [1]},
    {"embed_dim": 8, "depth": 1, "mlp_ratio": [2.0], "num_heads": [1]},
    {"embed_dim": 16, "depth": 1, "mlp_ratio": [1.0], "num_heads": [2]},
    {"embed_dim": 8, "depth": 2, "mlp_ratio": [1.0, 1.0], "num_heads": [1, 1]},
]


@pytest.fixture(scope="module")
def space():
    return load_space("vit-digits")


def complete_records(data: bytes) -> list[dict]:
    """The records of a partial file's newline-terminated lines that parse (a kill may cut the last one)."""
    records = []
    for line in data.split(b"\n")[:-1]:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return records


def write_tensor_data(path, n=30, size=4, classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images, labels = torch.randn(n, 1, size, size, generator=generator), torch.arange(n) % classes
    torch.save({"images": images, "labels": labels}, path)
    return images, labels


# ---------------------------------------------------------------- a real kill


def test_a_killed_build_resumes_without_retraining_finished_runs(tmp_path):
    arch_file = tmp_path / "archs.jsonl"
    arch_file.write_text("\n".join(json.dumps(a) for a in [*TINY, TINY[0]]) + "\n")  # a repeat is trained once
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("epochs: 1\n")
    out = tmp_path / "bench.json"
    partial = tmp_path / "bench.json.partial.jsonl"
    command = [sys.executable, "-m", "synth", "-q", "bench", "build", "--arch-file", str(arch_file), "--recipe", str(recipe),
               "--seeds", "0,1", "--workers", "1", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while first.poll() is None and time.monotonic() < deadline:
        if partial.exists() and complete_records(partial.read_bytes()):
            break
        time.sleep(0.01)
    killed = first.poll() is None
    if killed:
        os.kill(first.pid, signal.SIGKILL)
    _, stderr = first.communicate(timeout=60)
    assert killed or first.returncode == 0, stderr.decode()
    before = partial.read_bytes()
    assert complete_records(before), "the first build wrote no complete record before the deadline"

    second = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert second.returncode == 0, second.stderr.decode()
    after = partial.read_bytes()
    assert after.startswith(before[: before.rfind(b"\n") + 1])  # every record made before the kill, byte for byte
    records = complete_records(after)
    runs = [(r["key"], r["seed"]) for r in records]
    assert sorted(runs) == sorted((arch_key(a), s) for a in TINY for s in (0, 1))  # each (arch, seed) exactly once
    if not killed:
        assert after == before  # the first build finished everything: nothing was retrained
    bench = json.loads(out.read_text())
    assert [row["arch"] for row in bench["rows"]] == TINY
    acc = {(r["key"], r["seed"]): r["acc"] for r in records}
    for row in bench["rows"]:
        assert row["seed_acc"]["digits"] == [acc[(arch_key(row["arch"]), s)] for s in (0, 1)]
    assert bench["recipe"] == Recipe(epochs=1).to_dict()
    assert bench["sampling"] == {"method": "architecture file", "arch_file": str(arch_file)}
    assert bench["device"] == "cpu" and bench["dataset"] == {"source": "digits"}


def test_resume_takes_the_builds_own_settings_and_refuses_others(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "build", "--resume", str(out)]) == 2
    assert "b.json.build.json" in capsys.readouterr().err  # nothing to resume: the settings file is named
    arch_file = tmp_path / "archs.json"
    arch_file.write_text(json.dumps(TINY[:2]))
    assert main(["-q", "bench", "build", "--arch-file", str(arch_file), "--epochs", "1", "--seeds", "3",
                 "--workers", "1", "--out", str(out)]) == 0
    first = json.loads(out.read_text())
    assert main(["bench", "build", "--resume", str(out), "--seeds", "4", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "--seeds" in err and "--epochs" in err
    out.unlink()
    assert main(["-q", "bench", "build", "--resume", str(out), "--workers", "1"]) == 0
    again = json.loads(out.read_text())
    assert again["rows"] == first["rows"] and again["seeds"] == [3] and again["recipe"]["epochs"] == 1


# ---------------------------------------------------------------- recipes


def test_recipe_files_in_yaml_and_json(tmp_path):
    (tmp_path / "r.yaml").write_text("# a short SGD run\nepochs: 3\noptimizer: sgd\nlr: 0.1\nlabel_smoothing: 0.1\n")
    recipe = Recipe.from_file(tmp_path / "r.yaml")
    assert recipe == dataclasses.replace(Recipe(), epochs=3, optimizer="sgd", lr=0.1, label_smoothing=0.1)
    (tmp_path / "r.json").write_text(json.dumps({"batch_size": 32, "weight_decay": 0}))
    recipe = Recipe.from_file(tmp_path / "r.json")
    assert recipe.batch_size == 32 and recipe.weight_decay == 0.0 and isinstance(recipe.weight_decay, float)


@pytest.mark.parametrize(
    "text, field",
    [
        ("epochs: 1\nmomentum: 0.9\n", "'momentum'"),
        ("optimizer: adam\n", "'optimizer'"),
        ("epochs: 0\n", "'epochs'"),
        ("batch_size: 32.5\n", "'batch_size'"),
        ("lr: 2e-3\n", r"'lr' must be a number.*2\.0e-3"),
        ("test_fraction: 1.0\n", "'test_fraction'"),
        ("- epochs\n", "mapping"),
        ("epochs: [1\n", "invalid YAML"),
    ],
)
def test_bad_recipe_files_name_the_file_and_the_field(tmp_path, text, field):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=rf"recipe\.yaml.*{field}"):
        Recipe.from_file(path)


def test_a_resumed_build_refuses_another_recipe_or_changed_data(tmp_path, space):
    data = tmp_path / "shapes.pt"
    write_tensor_data(data)
    recipe = Recipe(dataset=str(data), epochs=1, batch_size=8)
    out = tmp_path / "bench.json"
    build_benchmark(space, TINY[:1], [0], recipe, out)
    different = r"bench\.json\.partial\.jsonl was made with a different recipe \(epochs: 1 there, 2 now\).*--out"
    with pytest.raises(InputError, match=different):
        build_benchmark(space, TINY[:1], [0], dataclasses.replace(recipe, epochs=2), out)
    write_tensor_data(data, n=31)  # other data under the same name
    with pytest.raises(InputError, match="data_digest"):
        build_benchmark(space, TINY[:1], [0], recipe, out)


# ---------------------------------------------------------------- architecture files


def test_architecture_files_in_every_format(tmp_path, space):
    archs = TINY[:3]
    files = {
        "list.json": json.dumps([*archs, archs[1]]),
        "object.json": json.dumps({"archs": archs}),
        "search.json": json.dumps({"top": [{"arch": a, "score": 1.0 - i} for i, a in enumerate(archs)], "proxy": "x"}),
        "archs.jsonl": "\n".join(json.dumps(a) for a in archs) + "\n\n",
        "bench.json": json.dumps({"format": "synth-benchmark/1", "space": "vit-digits", "seeds": [0],
                                  "rows": [{"arch": a, "acc": {"digits": 50.0}} for a in archs]}),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        assert load_arch_file(tmp_path / name, space) == archs, name
    (tmp_path / "one.jsonl").write_text(json.dumps(archs[0]) + "\n")
    assert load_arch_file(tmp_path / "one.jsonl", space) == archs[:1]


@pytest.mark.parametrize(
    "text, where",
    [
        (json.dumps([TINY[0], {**TINY[0], "embed_dim": 7}]), r"item 1: .*embed_dim"),
        (json.dumps({"archs": [TINY[0], {"depth": 1}]}), r"archs\[1\]: .*missing"),
        (json.dumps({"top": [{"arch": TINY[0]}, {"score": 1}]}), r"top\[1\]\.arch: expected an architecture"),
        (json.dumps({"rows": [{"arch": TINY[0]}, {"arch": {**TINY[0], "depth": 3}}]}), r"rows\[1\]\.arch: .*mlp_ratio"),
        (json.dumps(TINY[0]) + "\n" + json.dumps({**TINY[0], "depth": 2}) + "\n", r"line 2: .*mlp_ratio"),
        (json.dumps(TINY[0]) + "\n{not json\n", r":2: not valid JSON"),
        ("[]", "no architectures"),
    ],
)
def test_a_bad_architecture_file_names_the_entry(tmp_path, space, text, where):
    path = tmp_path / "archs.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=rf"archs\.txt.*{where}"):
        load_arch_file(path, space)


def test_archs_and_arch_file_exclude_each_other_and_gpu_training_is_one_process(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps(TINY[:1]))
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "build", "--archs", "2", "--arch-file", str(tmp_path / "a.json"), "--out", str(tmp_path / "b.json")])
    assert exit_info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err
    code = main(["-q", "bench", "build", "--arch-file", str(tmp_path / "a.json"), "--device", "cuda", "--workers", "2",
                 "--out", str(tmp_path / "b.json")])
    assert code == 2 and "--workers 1" in capsys.readouterr().err


# ---------------------------------------------------------------- datasets


def _grey_png(path, value, size=(10, 6)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value, value)).save(path)


def test_an_image_folder_is_split_resized_and_normalised(tmp_path):
    values = {"cat": [0, 40, 80], "dog": [160, 200, 240, 255]}
    for label, name in enumerate(values):
        for k, value in enumerate(values[name]):
            _grey_png(tmp_path / "pets" / name / f"{k}.png", value)
    data = load_dataset(tmp_path / "pets", split_seed=3, test_fraction=0.3, size=8, channels=1)
    # files in sorted order; the split is one seeded permutation, round(0.3 * 7) = 2 test images
    pixel = [v for name in values for v in values[name]]
    label = [i for i, name in enumerate(values) for _ in values[name]]
    order = torch.randperm(7, generator=torch.Generator().manual_seed(3)).tolist()
    assert data.name == "pets" and data.num_classes == 2
    assert data.x_train.shape == (5, 1, 8, 8) and data.x_test.shape == (2, 1, 8, 8)
    for x, y, picked in [(data.x_test, data.y_test, order[:2]), (data.x_train, data.y_train, order[2:])]:
        expected = torch.stack([torch.full((1, 8, 8), (pixel[i] / 255 - 0.5) / 0.5) for i in picked])
        torch.testing.assert_close(x, expected)
        assert y.tolist() == [label[i] for i in picked]
    assert load_dataset(tmp_path / "pets", 3, 0.3, 8, 1) is data  # read once per process
    _grey_png(tmp_path / "pets" / "dog" / "4.png", 128)
    assert len(load_dataset(tmp_path / "pets", 3, 0.3, 8, 1).y_train) == 6  # changed files are read again


def test_colour_images_get_imagenet_normalisation_per_channel(tmp_path):
    from PIL import Image

    for name, colour in [("a", (255, 0, 128)), ("b", (0, 255, 0))]:
        (tmp_path / name).mkdir()
        for k in range(2):
            Image.new("RGB", (5, 5), colour).save(tmp_path / name / f"{k}.png")
    data = load_dataset(tmp_path, 0, 0.5, size=4, channels=3)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    for x, y in zip(torch.cat([data.x_train, data.x_test]), torch.cat([data.y_train, data.y_test])):
        colour = torch.tensor([255, 0, 128] if y == 0 else [0, 255, 0]) / 255
        torch.testing.assert_close(x, ((colour - mean) / std).view(3, 1, 1).expand(3, 4, 4))


def test_a_tensor_file_is_split_and_resized_to_the_space(tmp_path, space):
    images, labels = write_tensor_data(tmp_path / "shapes.pt")
    data = training_data(Recipe(dataset=str(tmp_path / "shapes.pt"), split_seed=5, test_fraction=0.2), space)
    order = torch.randperm(30, generator=torch.Generator().manual_seed(5))
    test, train = order[:6], order[6:]
    torch.testing.assert_close(data.x_train, F.interpolate(images[train], size=(8, 8), mode="bilinear", align_corners=False))
    assert data.y_train.tolist() == labels[train].tolist() and data.y_test.tolist() == labels[test].tolist()
    assert data.name == "shapes" and data.num_classes == 3


def test_digits_split_sizes_follow_the_test_fraction():
    from sklearn.datasets import load_digits

    data = load_dataset("digits", split_seed=0, test_fraction=0.3)
    assert (len(data.y_test), len(data.y_train)) == (539, 1797 - 539)  # round(0.3 * 1797)
    bunch = load_digits()
    images = (torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16 - 0.5) / 0.5
    test = torch.randperm(1797, generator=torch.Generator().manual_seed(0))[:539]
    torch.testing.assert_close(data.x_test, images[test])
    assert data.y_test.tolist() == bunch.target[test.numpy()].tolist()


def test_unusable_datasets_are_input_errors(tmp_path, space):
    write_tensor_data(tmp_path / "many.pt", classes=12)
    with pytest.raises(InputError, match=r"many\.pt: labels span 0\.\.11; .*10 classes"):
        training_data(Recipe(dataset=str(tmp_path / "many.pt")), space)
    torch.save(torch.randn(10, 1, 8, 8), tmp_path / "unlabelled.pt")
    with pytest.raises(InputError, match=r"unlabelled\.pt: training needs labels"):
        training_data(Recipe(dataset=str(tmp_path / "unlabelled.pt")), space)
    torch.save({"images": torch.randn(10, 3, 8, 8), "labels": torch.arange(10) % 2}, tmp_path / "rgb.pt")
    with pytest.raises(InputError, match=r"rgb\.pt: images have 3 channels"):
        training_data(Recipe(dataset=str(tmp_path / "rgb.pt")), space)
    for k, name in enumerate("abc"):
        _grey_png(tmp_path / "three" / name / "0.png", 50 * k)
    two_classes = dataclasses.replace(space, fixed={**space.fixed, "num_classes": 2})
    with pytest.raises(InputError, match=r"three: labels span 0\.\.2"):
        training_data(Recipe(dataset=str(tmp_path / "three"), test_fraction=0.4), two_classes)
    with pytest.raises(InputError, match="neither a packaged dataset"):
        training_data(Recipe(dataset="cifar-11"), space)


def test_cli_trains_on_a_user_dataset_with_overrides_over_the_recipe_file(tmp_path):
    write_tensor_data(tmp_path / "shapes.pt")
    (tmp_path / "recipe.yaml").write_text("epochs: 5\nbatch_size: 8\n")
    (tmp_path / "archs.json").write_text(json.dumps({"archs": TINY[:2]}))
    out = tmp_path / "bench.json"
    code = main(["-q", "bench", "build", "--arch-file", str(tmp_path / "archs.json"), "--recipe", str(tmp_path / "recipe.yaml"),
                 "--epochs", "1", "--dataset", str(tmp_path / "shapes.pt"), "--seeds", "0", "--workers", "1", "--out", str(out)])
    assert code == 0
    bench = load_benchmark(str(out), rankable=False)  # two architectures: too few to rank
    assert bench.tasks == ["shapes"] and bench.archs == TINY[:2]
    assert bench.meta.recipe == Recipe(dataset=str(tmp_path / "shapes.pt"), epochs=1, batch_size=8).to_dict()
    assert bench.meta.dataset == {"source": str((tmp_path / "shapes.pt").resolve()), "digest": data_digest(tmp_path / "shapes.pt")}
    assert all(0 <= acc <= 100 for acc in bench.targets["shapes"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda_gives_an_accuracy_near_the_cpu_one(space):
    recipe = Recipe(epochs=1)
    cpu = train_and_evaluate(space, TINY[0], 0, recipe)
    cuda = train_and_evaluate(space, TINY[0], 0, recipe, device="cuda")
    assert cuda == pytest.approx(cpu, abs=5.0)
