"""`synth zoo` and its scoring engine: caching and resumption, failures counted, the JSON contract,
exported proxies through the same code path, and probe data from a user's folder or tensor file."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from synth.bench import benchmark_space, load_benchmark
from synth.cli import main
from synth.errors import InputError
from synth.probe import Probe
from synth.zoo import ProxySpec
from synth.zoo.scoring import ZooEntry, score_architectures, zoo_report


def counting_entry(name, fn, digest="d0"):
    calls = []

    def wrapped(model, inputs, targets, loss_fn):
        calls.append(1)
        return fn(model)

    return ZooEntry(name, ProxySpec(name, wrapped, "test"), digest), calls


def test_scores_are_cached_and_a_changed_proxy_is_rescored(small_bench, tmp_path):
    bench = load_benchmark(str(small_bench))
    space, archs = benchmark_space(bench), bench.archs[:4]
    width, calls = counting_entry("width", lambda m: m.embed_dim)
    first = score_architectures([width], space, archs, Probe(), cache=tmp_path)
    assert first["width"]["scores"].tolist() == [a["embed_dim"] for a in archs]
    assert len(calls) == 4
    score_architectures([width], space, archs, Probe(), cache=tmp_path)
    assert len(calls) == 4  # all from the cache
    changed, calls2 = counting_entry("width", lambda m: m.embed_dim, digest="d1")
    score_architectures([changed], space, archs, Probe(), cache=tmp_path)
    assert len(calls2) == 4  # new code, new scores
    score_architectures([width], space, archs, Probe(seed=1), cache=tmp_path)
    assert len(calls) == 8  # another probe batch, new scores


def test_failures_and_non_finite_scores_are_counted_not_hidden(small_bench, tmp_path):
    bench = load_benchmark(str(small_bench))
    space, archs = benchmark_space(bench), bench.archs[:4]

    def flaky(model):
        if model.embed_dim == archs[0]["embed_dim"]:
            raise RuntimeError("boom")
        return math.inf if len(model.blocks) == 1 else 1.0

    entry, _ = counting_entry("flaky", flaky)
    result = score_architectures([entry], space, archs, Probe(), cache=False)["flaky"]
    expected_bad = sum(a["embed_dim"] == archs[0]["embed_dim"] or a["depth"] == 1 for a in archs)
    assert int(np.isnan(result["scores"]).sum()) == expected_bad
    assert sum(result["errors"].values()) == expected_bad
    assert any("RuntimeError: boom" in message for message in result["errors"])


def test_report_correlations_match_scipy_and_reference_agreement(small_bench):
    bench = load_benchmark(str(small_bench))
    n = len(bench.archs)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=n)
    scores[3] = np.nan
    bench.meta.reference_scores = {"p": -2 * scores + 1}
    ids = [f"a{i}" for i in range(n)]
    report = zoo_report(bench, {"p": {"scores": scores, "seconds": np.ones(n), "errors": {}}}, ids)["proxies"]["p"]
    keep = ~np.isnan(scores)
    acc = bench.targets["digits"]
    assert report["kendall"]["digits"] == pytest.approx(sps.kendalltau(scores[keep], acc[keep]).statistic)
    assert report["spearman"]["digits"] == pytest.approx(sps.spearmanr(scores[keep], acc[keep]).statistic)
    assert report["pearson"]["digits"] == pytest.approx(sps.pearsonr(scores[keep], acc[keep]).statistic)
    assert report["reference"]["spearman_with_ours"] == pytest.approx(-1.0)
    assert report["scores"]["a3"] is None and report["failed"] == 1


def test_cli_json_contract_and_errors(small_bench, tmp_path, capsys):
    out = tmp_path / "zoo.json"
    assert main(["--quiet", "zoo", "--bench", str(small_bench), "--proxies", "params,l2_norm", "--sample", "6",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    bench = load_benchmark(str(small_bench))
    space = benchmark_space(bench)
    for name in ("params", "l2_norm"):
        entry = report["proxies"][name]
        assert set(entry) >= {"scores", "kendall", "spearman", "pearson", "seconds_per_arch"}
        assert len(entry["scores"]) == 6 and set(entry["kendall"]) == {"digits"}
    keys = {json.dumps(a, sort_keys=True, separators=(",", ":")): a for a in bench.archs}
    for key, value in report["proxies"]["params"]["scores"].items():
        with torch.device("meta"):
            assert value == sum(p.numel() for p in space.build(keys[key]).parameters())
    assert main(["zoo", "--bench", str(small_bench), "--proxies", "snipp"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["zoo", "--bench", str(small_bench), "--space", "pit"]) == 2


def test_exported_evolved_proxy_scores_like_the_engine(small_bench, tmp_path):
    """An evolved proxy.py run through the zoo's path (build, probe, score) gives the run's own scores."""
    from synth.evolve import EvolveConfig
    from synth.run import run_evolve
    from synth.zoo.scoring import resolve_proxies

    record = run_evolve("vit", str(small_bench), tmp_path / "run", EvolveConfig(population=6, iterations=3, sample_size=4, top_k=2))
    bench = load_benchmark(str(small_bench))
    space = benchmark_space(bench)
    entries = resolve_proxies([str(tmp_path / "run")], space)
    scored = score_architectures(entries, space, bench.archs[:5], Probe(), cache=False)[str(tmp_path / "run")]
    np.testing.assert_allclose(scored["scores"], np.array(record["scores"][:5], dtype=float), rtol=1e-4, atol=1e-6)


def _png(path, value, size=(10, 6)):
    from PIL import Image

    Image.new("RGB", size, (value, value, value)).save(path)


def test_probe_from_an_image_folder_with_class_subfolders(tmp_path):
    from synth.datasets import probe_from_path

    for label, name in enumerate(["cat", "dog"]):
        (tmp_path / name).mkdir()
        for k in range(3):
            _png(tmp_path / name / f"{k}.png", 255 * label)
    inputs, targets = probe_from_path(tmp_path, 4, 0, 8, 3, 10)
    assert inputs.shape == (4, 3, 8, 8)
    # black images are cats (0), white ones dogs (1); ImageNet normalisation of 0 and 1
    red = inputs[:, 0, 0, 0]
    expected = torch.where(targets == 1, (1 - 0.485) / 0.229, -0.485 / 0.229)
    torch.testing.assert_close(red, expected.float())
    with pytest.raises(InputError, match="labels span"):
        probe_from_path(tmp_path, 4, 0, 8, 3, 1)


def test_probe_from_a_tensor_file_and_bad_files(tmp_path):
    from synth.datasets import probe_from_path

    images, labels = torch.randn(10, 1, 8, 8), torch.arange(10)
    torch.save({"images": images, "labels": labels}, tmp_path / "probe.pt")
    inputs, targets = probe_from_path(tmp_path / "probe.pt", 4, 0, 8, 1, 10)
    for x, y in zip(inputs, targets):
        torch.testing.assert_close(x, images[y])  # each image still carries its own label
    torch.save(torch.randn(5, 3, 8, 8), tmp_path / "rgb.pt")
    with pytest.raises(InputError, match="channels"):
        probe_from_path(tmp_path / "rgb.pt", 4, 0, 8, 1, 10)
    (tmp_path / "broken.pt").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="broken.pt"):
        probe_from_path(tmp_path / "broken.pt", 4, 0, 8, 1, 10)
    assert Probe(dataset=str(tmp_path / "probe.pt")).fingerprint()["data_digest"]


def test_split_scores_the_part_of_evolves_split_asked_for(small_bench, tmp_path):
    from synth.bench import split_indices
    from synth.space import arch_key

    bench = load_benchmark(str(small_bench))
    search_rows, test_rows = split_indices(len(bench), 3)
    for part, rows in (("test", test_rows), ("search", search_rows)):
        out = tmp_path / f"{part}.json"
        assert main(["--quiet", "zoo", "--bench", str(small_bench), "--proxies", "params", "--split", part,
                     "--split-seed", "3", "--json", str(out)]) == 0
        report = json.loads(out.read_text())
        assert set(report["proxies"]["params"]["scores"]) == {arch_key(bench.archs[i]) for i in rows}
        assert report["benchmark"]["split"] == {"part": part, "seed": 3}


def test_default_probe_is_the_benchmarks_own_data_when_it_can_be_read(small_bench, tmp_path):
    """A benchmark built on the user's images probes with them; one whose images are gone falls back to noise."""
    from synth.probe import default_probe

    bench = load_benchmark(str(small_bench))
    space = benchmark_space(bench)
    assert default_probe(bench, space).dataset == "digits"
    images = tmp_path / "images"
    images.mkdir()
    bench.meta.recipe = {**bench.meta.recipe, "dataset": str(images)}
    probe = default_probe(bench, space)
    assert (probe.dataset, probe.batch_size) == (str(images), 64)
    bench.meta.recipe["dataset"] = str(tmp_path / "gone")
    assert default_probe(bench, space).dataset == "gaussian"
