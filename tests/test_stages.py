"""The stage modules: a notebook's parameters, declared once, reach its steps from a study file."""

from __future__ import annotations

import dataclasses

from hils_kit.core.layout import PrepareFiles
from hils_kit.data.loaders import load_questions
from hils_kit.stages.cell import CellParams, train_config
from hils_kit.stages.prepare import split_and_sample
from hils_kit.study.cells import cell_parameters, expand_cells, prepare_parameters
from hils_kit.study.config import study_from_dict


def test_a_study_s_sample_seed_draws_another_sample_from_the_same_split(tmp_path):
    def prepare(folder, **keys):
        config = study_from_dict({"models": ["tiny"], "preset": "tiny", "train_limit": 8, "test_limit": 4, **keys})
        split_and_sample(prepare_parameters(config, tmp_path / folder))
        return PrepareFiles(tmp_path / folder)

    base, same, other = prepare("a"), prepare("b", sample_seed=0), prepare("c", sample_seed=7)
    ids = {name: set(load_questions(files.train("holdout"))["id"]) for name, files in (("a", base), ("c", other))}
    assert base.split.read_bytes() == other.split.read_bytes()  # the split keeps its own seed
    assert base.train("holdout").read_bytes() == same.train("holdout").read_bytes()  # None: the split's seed
    assert ids["a"] != ids["c"] and len(ids["c"]) == 8


def test_a_cell_gets_every_training_setting_resolved_and_builds_its_config_in_one_place():
    config = study_from_dict({"models": ["tiny"], "preset": "tiny", "train": {"learning_rate": 5e-4}})
    params = cell_parameters(config, expand_cells(config)[0], "p", "o")
    assert (params.learning_rate, params.lora_r, params.quantization) == (5e-4, 8, "none")  # the preset's r
    assert None not in [getattr(params, f.name) for f in dataclasses.fields(CellParams) if f.name != "precision"]
    assert train_config(params).learning_rate == 5e-4 and train_config(params).seed == params.train_seed
    assert train_config(CellParams(preset="tiny")).learning_rate == 1e-3  # None: the preset's value
