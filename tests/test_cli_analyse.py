"""``hils analyse --predictions LONG.csv -o DIR``, in-process: the tables it writes, bad files and bad output
folders refused with exit 2 and nothing written, the argument combinations it refuses, and the meta-analysis
of a strategy over several test sets."""

import math

import pandas as pd
import pytest

from hils_kit.cli import main
from hils_kit.stats.simulate import simulate_predictions

TABLES = ("comparisons.csv", "variance_components.csv", "meta_analysis.csv", "power.csv")


@pytest.fixture
def long_csv(tmp_path):
    path = tmp_path / "long.csv"
    simulate_predictions(["random", "curriculum", "blocked"], runs=3, questions=100, seed=0).to_csv(path, index=False)
    return path


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_analyse_predictions_writes_the_four_tables_and_prints_the_number_of_comparisons(long_csv, tmp_path, capsys):
    out = tmp_path / "tables"
    assert main(["analyse", "--predictions", str(long_csv), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("4 comparisons (1 test sets, 9 runs)")
    assert "0 claim(s) significant after Holm." in printed
    for name in TABLES:
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "comparisons.csv", keep_default_na=False, na_values=[""])
    for column in ("dataset", "strategy", "metric", "estimate", "ci_low", "ci_high", "p_value", "p_holm"):
        assert column in table, column
    assert len(table) == 4
    assert sorted(zip(table["strategy"], table["metric"])) == sorted(
        (s, m) for s in ("curriculum", "blocked") for m in ("accuracy", "gold log-prob")
    )
    assert (table["p_holm"] >= table["p_value"]).all() and (table["p_holm"] > table["p_value"]).any()
    power = pd.read_csv(out / "power.csv")
    assert set(power["metric"]) == {"accuracy"} and len(power) == 2
    assert power["mde"].map(math.isfinite).all()
    components = pd.read_csv(out / "variance_components.csv")
    assert {"var_run", "var_residual", "var_question_by_strategy"} <= set(components) and len(components) == 4


def test_analyse_predictions_passes_alpha_and_baseline_through(long_csv, tmp_path):
    out = tmp_path / "tables"
    argv = ["analyse", "--predictions", str(long_csv), "-o", str(out), "--baseline", "blocked", "--alpha", "0.01"]
    assert main(argv) == 0
    table = pd.read_csv(out / "comparisons.csv")
    assert set(table["baseline"]) == {"blocked"} and set(table["strategy"]) == {"random", "curriculum"}
    assert (table["family_alpha"] == 0.01).all()


def test_a_bad_predictions_file_exits_2_naming_file_line_and_column_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("dataset,strategy,run,question,correct\nd,random,r1,q1,1\nd,random,r1,q2,maybe\n")
    out = tmp_path / "new" / "tables"
    assert main(["analyse", "--predictions", str(bad), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert f"hils: error: {bad}, line 3, column 'correct': 'maybe' is not 0/1" in captured.err
    assert captured.out == ""
    assert not out.exists() and not out.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_a_missing_predictions_file_exits_2(tmp_path, capsys):
    out = tmp_path / "tables"
    assert main(["analyse", "--predictions", str(tmp_path / "none.csv"), "-o", str(out)]) == 2
    assert "no predictions file" in capsys.readouterr().err and not out.exists()


def test_a_missing_baseline_exits_2_and_writes_nothing(long_csv, tmp_path, capsys):
    out = tmp_path / "tables"
    assert main(["analyse", "--predictions", str(long_csv), "-o", str(out), "--baseline", "spaced"]) == 2
    err = capsys.readouterr().err
    assert "'spaced'" in err and "strategies: blocked, curriculum, random" in err
    assert not out.exists()


def test_an_existing_folder_the_kit_did_not_make_is_refused_unless_overwrite(long_csv, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my own notes")
    (out / "power.csv").write_text("not the kit's")
    before = _files(out)
    assert main(["analyse", "--predictions", str(long_csv), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not made by the kit" in err and "--overwrite" in err
    assert _files(out) == before
    assert main(["analyse", "--predictions", str(long_csv), "-o", str(out), "--overwrite"]) == 0
    after = _files(out)
    assert after["notes.txt"] == b"my own notes"  # only the files the command writes are replaced
    assert set(TABLES) <= set(after) and after["power.csv"] != b"not the kit's"


def test_the_kits_own_output_folder_can_be_written_again(long_csv, tmp_path):
    out = tmp_path / "tables"
    assert main(["analyse", "--predictions", str(long_csv), "-o", str(out)]) == 0
    assert main(["analyse", "--predictions", str(long_csv), "-o", str(out), "--alpha", "0.1"]) == 0
    assert (pd.read_csv(out / "comparisons.csv")["family_alpha"] == 0.1).all()


@pytest.mark.parametrize("both", [True, False], ids=["both", "neither"])
def test_runs_dir_and_predictions_together_or_neither_exit_2(long_csv, tmp_path, capsys, both):
    argv = ["analyse", str(tmp_path / "runs"), "--predictions", str(long_csv)] if both else ["analyse"]
    assert main([*argv, "-o", str(tmp_path / "tables")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hils: error: give ") and "RUNS_DIR" in err and "--predictions LONG.csv" in err
    assert not (tmp_path / "tables").exists()


def test_predictions_without_an_output_folder_exits_2(long_csv, capsys):
    assert main(["analyse", "--predictions", str(long_csv)]) == 2
    assert "--predictions needs -o DIR" in capsys.readouterr().err


def test_the_meta_analysis_pools_a_strategy_over_five_test_sets(tmp_path):
    frames = [
        simulate_predictions(
            ["random", "curriculum"], runs=3, questions=80, effects={"curriculum": 0.2}, dataset=f"set{i}", seed=i
        )
        for i in range(5)
    ]
    path = tmp_path / "long.csv"
    pd.concat(frames).to_csv(path, index=False)
    out = tmp_path / "tables"
    assert main(["analyse", "--predictions", str(path), "-o", str(out)]) == 0
    meta = pd.read_csv(out / "meta_analysis.csv")
    assert len(meta) == 2  # curriculum × (accuracy, gold log-prob)
    row = meta[meta["metric"] == "accuracy"].iloc[0]
    assert row["strategy"] == "curriculum" and row["k"] == 5 and row["cells_without_se"] == 0
    for column in ("pooled", "se_pooled", "ci_low", "ci_high", "tau2"):
        assert math.isfinite(row[column]), column
    assert row["ci_low"] < row["pooled"] < row["ci_high"] and row["tau2"] >= 0
    table = pd.read_csv(out / "comparisons.csv")
    estimates = table.loc[table["metric"] == "accuracy", "estimate"]
    assert len(estimates) == 5 and estimates.min() <= row["pooled"] <= estimates.max()
