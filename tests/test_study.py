"""Study files: validation, cell expansion and the notebook parameter contract."""

from __future__ import annotations

import pytest

from hils_kit.core.layout import PrepareFiles
from hils_kit.stages.cell import CellParams
from hils_kit.study.cells import (
    analysis_parameters,
    cell_parameters,
    expand_cells,
    exploration_parameters,
    part_test_sets,
    prepare_parameters,
    replicate_seeds,
)
from hils_kit.study.config import StudyConfig, study_from_dict
from hils_kit.study.loading import has_examinee_shares, load_study


def write(tmp_path, text: str, name: str = "demo.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_study_reads_the_yaml_and_names_it_after_the_file(tmp_path):
    config = load_study(write(tmp_path, "models: [tiny]\nsplit: {kind: kfold, k: 3}\nreplicates: 2\n"))
    assert config.name == "demo"
    assert config.models == ["tiny"]
    assert config.split.kind == "kfold" and config.split.k == 3 and config.split.include_full
    assert config.replicates == 2
    assert config.prepare.test_sets == ["medqa", "mmlu_medical"]  # defaults fill the rest


def test_unknown_key_is_refused_with_file_and_key(tmp_path):
    path = write(tmp_path, "models: [tiny]\nstrategy: [random]\n")
    with pytest.raises(ValueError, match=r"demo\.yaml: unknown key 'strategy'"):
        load_study(path)
    with pytest.raises(ValueError, match=r"unknown key 'split\.folds'"):
        load_study(write(tmp_path, "split: {kind: kfold, folds: 3}\n"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("rounds: three\n", r"'rounds' should be an integer, got str 'three'"),
        ("models: smollm2\n", r"'models' should be a list of strings, got str"),
        ("models: [smollm2, 3]\n", r"'models\[1\]' should be a string, got int"),
        ("debias: 1\n", r"'debias' should be true/false"),
        ("split: {kind: holdout, test_fraction: lots}\n", r"'split\.test_fraction' should be a number"),
        ("preset: [a, b]\n", r"'preset' should be a string or a mapping of string to string"),
    ],
)
def test_wrong_types_are_refused_naming_the_key_and_the_expected_type(tmp_path, text, message):
    with pytest.raises(ValueError, match=r"demo\.yaml: " + message):
        load_study(write(tmp_path, text))


def test_numeric_strings_are_coerced_for_float_fields(tmp_path):
    # PyYAML reads 1e-1 as the string '1e-1'
    config = load_study(write(tmp_path, "split: {kind: holdout, test_fraction: 1e-1}\n"))
    assert config.split.test_fraction == pytest.approx(0.1)
    assert isinstance(config.split.test_fraction, float)


def test_a_key_given_twice_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"demo\.yaml: not valid YAML: .*key 'scenarios' is given twice"):
        load_study(write(tmp_path, "scenarios: [llm]\nstrategies: [random]\nscenarios: [human]\n"))


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ValueError, match=r"demo\.yaml: the top level must be a mapping.*got list"):
        load_study(write(tmp_path, "- name: x\n- models: [tiny]\n"))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"strategies": ["random", "curiculum"]}, r"'strategies' has unknown value\(s\) \['curiculum'\]"),
        ({"scenarios": ["llm", "experts"]}, r"'scenarios' has unknown value"),
        ({"models": ["a", "b"], "preset": {"a": "tiny"}}, r"'preset' has no entry for model\(s\) \['b'\]"),
        ({"split": {"kind": "holdout", "k": 3}}, r"'split\.k' does not apply to kind holdout"),
        ({"split": {"kind": "bootstrap"}}, r"'split\.kind' 'bootstrap' should be one of holdout, kfold"),
        ({"split": {"kind": "kfold", "include_full": True}, "test_sets": []}, r"needs external 'test_sets'"),
        ({"replicates": 0}, r"'replicates' should be at least 1"),
        ({"name": "my study"}, r"'name' 'my study' must be a folder name"),
        ({"models": ["org/m", "org m"]}, r"'models' .* repeat a model"),
        ({"variant": "emh"}, r"'variant' 'emh' should be one of strict, tiers"),
        ({"category_order": "random"}, r"'category_order' 'random' should be one of size"),
        ({"preset": "gpt-5"}, r"'preset' / 'train' for model 'smollm2': unknown preset 'gpt-5'"),
        ({"train_overrides": {"learning_rat": 1e-4}}, r"unknown key 'train.learning_rat' \(known keys: learning_rate"),
        (
            {"train_overrides": {"num_train_epochs": "two"}},
            r"'train.num_train_epochs' should be an integer, got str 'two'",
        ),
    ],
)
def test_invalid_values_are_refused(data, message):
    with pytest.raises(ValueError, match=message):
        study_from_dict(data, source="s.yaml")


def test_holdout_expansion_runs_each_strategy_once_per_set_of_labels_it_uses():
    config = StudyConfig(models=["tiny", "smollm2"], scenarios=["llm", "human"], replicates=2)
    cells = expand_cells(config)
    # per model and replicate: random, blocked, interleaved once ("none") + 3 curricula x 2 scenarios
    assert len(cells) == 2 * 2 * (3 + 3 * 2)
    assert {c.scenario for c in cells if c.strategy in ("random", "blocked", "interleaved")} == {"none"}
    assert {c.part for c in cells} == {"holdout"}
    assert len({c.id for c in cells}) == len(cells)
    # clusters change the categories: blocked and interleaved run again under llm_clusters, random does not
    clusters = expand_cells(StudyConfig(models=["tiny"], scenarios=["llm", "llm_clusters"]))
    assert sorted(c.scenario for c in clusters if c.strategy == "blocked") == ["llm_clusters", "none"]
    assert [c.scenario for c in clusters if c.strategy == "random"] == ["none"]
    assert len(clusters) == 1 + 2 * 2 + 3 * 2
    only_clusters = expand_cells(StudyConfig(models=["tiny"], scenarios=["llm_clusters"], strategies=["interleaved"]))
    assert [c.scenario for c in only_clusters] == ["llm_clusters"]


def test_kfold_expansion_adds_folds_and_the_full_part():
    config = StudyConfig(
        models=["tiny"],
        split=study_from_dict({"split": {"kind": "kfold", "k": 4}}).split,
        strategies=["random", "curriculum"],
        scenarios=["llm"],
    )
    cells = expand_cells(config)
    assert [c.part for c in cells if c.strategy == "random"] == ["fold0", "fold1", "fold2", "fold3", "full"]
    assert len(cells) == 5 * 2
    assert part_test_sets(config, "fold2") == ["medmcqa"]
    assert part_test_sets(config, "full") == ["medqa", "mmlu_medical"]
    without_full = study_from_dict({"split": {"kind": "kfold", "k": 4, "include_full": False}})
    assert len(expand_cells(without_full)) == 4 * len(expand_cells(StudyConfig()))


def test_cell_ids_are_readable_and_stable():
    config = study_from_dict(
        {
            "models": ["HuggingFaceTB/SmolLM2-135M-Instruct"],
            "strategies": ["curriculum"],
            "scenarios": ["llm"],
            "replicates": 2,
        }
    )
    ids = [c.id for c in expand_cells(config)]
    assert ids == [
        "HuggingFaceTB-SmolLM2-135M-Instruct__llm__curriculum__holdout__r0",
        "HuggingFaceTB-SmolLM2-135M-Instruct__llm__curriculum__holdout__r1",
    ]
    assert ids == [c.id for c in expand_cells(config)]


def test_notebook_parameters_follow_the_contract(tmp_path):
    config = study_from_dict(
        {
            "models": ["a", "b"],
            "preset": {"a": "tiny", "b": "llama2-7b"},
            "train_data": "data/lek.csv",
            "test_sets": ["medqa"],
            "strategies": ["interleaved_curriculum"],
            "replicates": 2,
        }
    )
    cell = expand_cells(config)[-1]
    params = cell_parameters(config, cell, tmp_path / "prepare", tmp_path / "cell")
    assert isinstance(params, CellParams)
    assert (params.model, params.preset, params.replicate) == ("b", "llama2-7b", 1)
    assert (params.order_seed, params.train_seed, params.variant) == (1, 43, "strict")  # llama2-7b's seed 42 + 1
    assert params.test_sets == ["lek_test", "medqa"]
    assert exploration_parameters(config, tmp_path).compare_with == ["medqa"]
    assert analysis_parameters(config, tmp_path, tmp_path).run_dir == str(tmp_path)
    prepare = prepare_parameters(config, tmp_path / "prepare")
    assert prepare.split == {"kind": "holdout", "test_fraction": 0.2, "seed": 0}
    assert prepare.parts == {"holdout": ["lek_test", "medqa"]}
    assert PrepareFiles(tmp_path).train("holdout").name == "train_holdout.csv"
    assert PrepareFiles(tmp_path).test("holdout", "medqa").name == "test_holdout__medqa.csv"


def test_replicates_are_independent_runs_and_variant_paper_follows_the_authors():
    plain = study_from_dict(
        {
            "models": ["tiny"],
            "preset": "tiny",
            "strategies": ["random", "curriculum"],
            "replicates": 3,
            "train_overrides": {"seed": 7},
        }
    )
    seeds = {(c.strategy, c.replicate): replicate_seeds(plain, c) for c in expand_cells(plain)}
    assert [seeds[("curriculum", r)]["train_seed"] for r in range(3)] == [7, 8, 9]  # a strict curriculum too
    assert [seeds[("random", r)]["order_seed"] for r in range(3)] == [0, 1, 2]
    paper = study_from_dict(
        {
            "models": ["tiny"],
            "preset": "tiny",
            "strategies": ["random", "curriculum"],
            "variant": "paper",
            "replicates": 5,
        }
    )
    runs = {(c.strategy, c.replicate): replicate_seeds(paper, c) for c in expand_cells(paper)}
    assert [runs[("curriculum", r)]["variant"] for r in range(5)] == ["strict", "tiers", "tiers", "tiers", "tiers"]
    assert [runs[("curriculum", r)]["order_seed"] for r in range(5)] == [0, 42, 123, 456, 789]
    assert {runs[("random", r)]["variant"] for r in range(5)} == {"strict"}
    with pytest.raises(ValueError, match="'variant' paper defines 5 runs per cell; 'replicates' is 6"):
        study_from_dict({"variant": "paper", "replicates": 6})


def test_load_study_checks_what_the_study_points_at_and_gives_data_files_as_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "lek.csv").write_text("prompt,A,B,Answer,Category,%A,%B\nq?,x,y,A,c,60,40\n")
    (tmp_path / "llm.csv").write_text("id,difficulty\n")
    (tmp_path / "my-model").mkdir()
    config = load_study(
        write(
            tmp_path,
            "models: [my-model, tiny]\npreset: tiny\ntrain_data: data/lek.csv\n"
            "test_sets: [medqa]\nscenarios: [human, llm]\ndifficulty_file: llm.csv\n",
        )
    )
    assert config.prepare.train_data == str(tmp_path / "data" / "lek.csv")
    assert config.prepare.difficulty_file == str(tmp_path / "llm.csv")
    assert config.prepare.test_sets == ["medqa"] and config.models == ["my-model", "tiny"]
    assert part_test_sets(config, "holdout") == ["lek_test", "medqa"]


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("lek.csv", "prompt,A,B,Answer,%A,%B\n", True),
        ("kit.csv", "id,question,options,answer,human_p_correct\n", True),
        ("plain.csv", "id,question,options,answer\n", False),
        ("shares.jsonl", '\n{"question": "q", "%A": 50, "%B": 50}\n', True),
        ("array.json", '[{"question": "q", "opa": "a", "cop": 1}]', False),
        ("broken.jsonl", "{not json\n", None),
    ],
)
def test_examinee_shares_are_read_from_the_header_or_first_record(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    assert has_examinee_shares(str(path)) is expected


def test_numbers_must_be_finite_and_settings_valid_without_touching_the_disk():
    with pytest.raises(ValueError, match=r"s\.yaml: 'split\.test_fraction' should be a finite number, got 'nan'"):
        study_from_dict({"split": {"kind": "holdout", "test_fraction": "nan"}}, source="s.yaml")
    with pytest.raises(ValueError, match=r"'train\.learning_rate' should be a finite number, got inf"):
        study_from_dict({"train_overrides": {"learning_rate": float("inf")}})
    with pytest.raises(
        ValueError,
        match=r"'optim' 'adamw_torhc' is not a transformers optimiser \(did you mean "
        r"adamw_torch",
    ):
        study_from_dict({"train_overrides": {"optim": "adamw_torhc"}})
    assert study_from_dict({"train_overrides": {"optim": "sgd", "lora_dropout": 0}}).train_overrides["optim"] == "sgd"
