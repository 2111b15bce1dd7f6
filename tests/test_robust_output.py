"""The CLI prints user text as it is (never as rich markup), does not cut piped tables to a terminal
width, and takes -q/--json after the command as well as before it."""

import re

import pytest

from synth.cli import build_parser, main
from synth.cli._output import Output

HOSTILE = ["[/x]", "[bold]a path[/bold]", "must be [min, max] with 0 <= min <= max", "[red", "x[/]y"]


@pytest.mark.parametrize("text", HOSTILE)
def test_errors_and_notes_print_bracketed_text_verbatim(text, capsys):
    out = Output()
    out.error(f"key {text}: bad")
    out.info(f"note: {text}")
    err = capsys.readouterr().err
    assert f"error: key {text}: bad" in err
    assert f"note: {text}" in err


def test_a_grammar_path_with_markup_is_named_in_an_exit_2_message(tmp_path, capsys):
    folder = tmp_path / "[" / "x][bold]"  # the path holds '[/x][bold]'
    folder.mkdir(parents=True)
    grammar = folder / "g.yaml"
    grammar.write_text("name: [unclosed\n")
    assert main(["evolve", "--grammar", str(grammar), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(grammar) in err and "invalid YAML" in err


def test_tables_cells_titles_and_progress_keep_brackets(capsys):
    out = Output()
    out.table("title [/x]", ["col [b]", "n"], [["[/x] cell", 1.5]])
    with out.progress("step [/x]", 3) as advance:
        advance(3)
    captured = capsys.readouterr()
    for text in ("title [/x]", "col [b]", "[/x] cell", "1.5000"):
        assert text in captured.out
    assert "step [/x]" in captured.err


def test_a_piped_table_is_not_cut_to_80_columns(capsys):
    values = [[f"architecture-{i}-" + "x" * 60] + [i + j / 7 for j in range(12)] for i in range(3)]
    Output().table("wide", ["architecture"] + [f"Kendall task{j}" for j in range(12)], values)
    lines = capsys.readouterr().out.splitlines()
    body = [line for line in lines if "architecture-" in line]
    assert len(body) == 3  # one line per row: nothing folded
    for i, line in enumerate(body):
        assert f"architecture-{i}-" + "x" * 60 in line
        numbers = re.findall(r"\d+\.\d{4}", line)
        assert numbers == [f"{i + j / 7:.4f}" for j in range(12)]


def test_a_progress_bar_that_ends_early_ends_full(capsys):
    with Output().progress("scoring", 10) as advance:
        advance(4)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "4/4" in last


@pytest.mark.parametrize("argv", [["evolve", "--json"], ["--json", "evolve"], ["search", "--json"],
                                  ["bench", "build", "--out", "x", "--json"], ["zoo", "-q"]])
def test_output_options_are_taken_after_the_command_too(argv):
    args = build_parser().parse_args(argv)
    assert args.json_mode == ("--json" in argv)
    assert args.quiet == ("-q" in argv)


def test_zoo_keeps_its_own_json_file_option():
    args = build_parser().parse_args(["--json", "zoo", "--json", "report.json"])
    assert args.json_mode is True and str(args.json_file) == "report.json"


def test_zoo_json_to_a_folder_is_refused_and_leaves_nothing(tmp_path, capsys):
    folder = tmp_path / "reports"
    folder.mkdir()
    assert main(["zoo", "--proxies", "params", "--json", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["reports"]


def test_a_failed_atomic_write_leaves_no_temporary_file(tmp_path):
    from synth.rundir import write_json

    target = tmp_path / "taken"
    target.mkdir()
    with pytest.raises(OSError):
        write_json(target, {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_the_summary_says_how_many_held_out_architectures_got_no_score(small_bench, tmp_path, capsys):
    """An architecture the winner cannot score is left out of its held-out correlations (not NaN for
    the whole split), and the summary says how many were left out."""
    import dataclasses

    from synth.cli.evolve import render_summary
    from synth.evolve import EvolveConfig
    from synth.run import run_evolve

    record = run_evolve("vit", str(small_bench), tmp_path / "r", EvolveConfig(population=6, iterations=2, sample_size=4, top_k=2))
    scores = list(record.scores)
    scores[record.split["test"][0]] = None
    render_summary(dataclasses.replace(record, scores=scores), tmp_path / "r", Output())
    assert "1 of the held-out architectures got no finite score" in capsys.readouterr().err
    render_summary(record, tmp_path / "r", Output())
    assert "no finite score" not in capsys.readouterr().err
