"""The command line a model trained in the app states instead of its data: each family's flags
rebuild its config through the module's own parser and ``config_from_args``, and the cohort is
named by format, file names and fingerprint."""

from __future__ import annotations

import shlex
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from core.cli import flags_to_argv
from core.data.cohort import split_cohort
from core.data.formats import NamedInput, load_cohort
from core.errors import ConfigError


def _round_trip(module, config):
    command = module.equivalent_command(config, "cpu")
    argv = flags_to_argv(command.parser, {"cohort": "wide_table", "out": "m"} | command.flags)
    return module.config_from_args(command.parser.parse_args(argv)), argv


def test_ehrdiff_flags_rebuild_the_config():
    from core.ehrdiff import train

    config = train.TrainConfig(units=(256, 256), steps=600, seed=7, conditional=False)
    rebuilt, argv = _round_trip(train, config)
    assert rebuilt == config
    assert "--unconditional" in argv and "--units" in argv and "--batch-size" not in argv


def test_flexgen_flags_rebuild_the_config():
    from core.flexgen import train
    from core.flexgen.missing import missing_part_handling

    config = replace(
        missing_part_handling(train.FlexGenConfig(), "gw"),
        vae_epochs=3,
        diffusion_iters=250,
        temporal_kind="cnn",
        conditional=False,
        seed=5,
    )
    rebuilt, argv = _round_trip(train, config)
    assert rebuilt == config
    assert argv[argv.index("--alignment") + 1] == "gw"


def test_ehrpd_flags_rebuild_the_config():
    from core.ehrpd import train

    config = train.EHRPDTrainConfig(steps=150, min_patients=2, conditional=False, seed=9)
    rebuilt, _ = _round_trip(train, config)
    assert rebuilt == config


def test_an_unknown_flag_is_refused_not_dropped():
    from core.ehrdiff.train import build_parser

    with pytest.raises(ConfigError, match="no option for 'embed_dim'"):
        flags_to_argv(build_parser(), {"embed_dim": 64})


def test_the_command_names_the_cohort_by_files_and_fingerprint_not_content(tmp_path):
    from core.ehrdiff.train import TrainConfig, build_parser, equivalent_command

    frame = pd.DataFrame(
        {
            "record_id": [f"REC-{123450 + i}" for i in range(30)],
            "age": np.arange(30) + 40.25,
            "death": [0, 1] * 15,
        }
    )
    path = tmp_path / "ward_7.csv"
    frame.to_csv(path, index=False)
    options = {"id_column": "record_id", "label_column": "death", "types": {"age": "numeric"}}
    cohort = load_cohort("wide_table", {"table": NamedInput("ward_7.csv", path)}, options)
    assert cohort.origin.format_id == "wide_table"
    assert cohort.origin.files == (("table", "ward_7.csv"),)
    split = split_cohort(cohort, 0.25, 3)
    config = TrainConfig(units=(64,), steps=100, seed=1)
    text = equivalent_command(config, "cpu").render(cohort, split, tmp_path / "models" / "m")
    assert "REC-1234" not in text and "40.25" not in text
    assert cohort.fingerprint() in text and "trained in the Generate page" in text
    assert "types (1 set in the page)" in text and len(text) < 2000
    argv = shlex.split(text.split("  # ")[0])[3:]
    args = build_parser().parse_args(argv)  # the command runs as written
    assert (args.cohort, args.input, args.holdout, args.split_seed) == (
        "wide_table",
        ["table=ward_7.csv"],
        0.25,
        3,
    )
    assert args.option == ["id_column=record_id", "label_column=death"]
