"""params.yaml is loaded into typed config; bad keys and values fail with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from casnet.core.errors import CasnetConfigError
from casnet.morphology.settings import MorphologyConfig
from casnet.params import Params, load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]


def test_project_params_file_is_valid_and_matches_defaults():
    # params.yaml documents every knob with the paper's defaults: it must load, and it must not
    # silently diverge from the code's defaults.
    loaded = load_params(ROOT / "params.yaml")
    assert loaded == Params()


def test_params_file_lists_every_key():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, model in Params.model_fields.items():
        assert set(raw[section]) == set(model.annotation.model_fields), section


def test_unknown_key_names_key_and_allowed_keys():
    with pytest.raises(CasnetConfigError) as err:
        parse_params({"morphology": {"etaa": 0.2}})
    msg = str(err.value)
    assert "morphology.etaa" in msg
    assert "unknown key" in msg
    assert "eta" in msg and "aperture_rp" in msg  # what is allowed


def test_bad_value_names_key_value_and_constraint():
    with pytest.raises(CasnetConfigError) as err:
        parse_params({"morphology": {"eta": 1.5}})
    msg = str(err.value)
    assert "morphology.eta = 1.5" in msg
    assert "less than 1" in msg


def test_wrong_type_is_rejected():
    with pytest.raises(CasnetConfigError, match="interpolation_order"):
        parse_params({"morphology": {"interpolation_order": 2}})


def test_cross_field_check():
    with pytest.raises(CasnetConfigError, match="mag_range"):
        parse_params({"simulate": {"mag_range": [25.0, 21.0]}})


def test_unknown_section_is_rejected():
    with pytest.raises(CasnetConfigError, match="unknown key"):
        parse_params({"morpholgy": {}})


def test_missing_explicit_file_and_bad_yaml(tmp_path):
    with pytest.raises(CasnetConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("morphology: [unclosed\n")
    with pytest.raises(CasnetConfigError, match="not valid YAML"):
        load_params(bad)


def test_config_is_immutable():
    cfg = MorphologyConfig()
    with pytest.raises(ValueError, match="frozen"):
        cfg.eta = 0.3  # type: ignore[misc]


def test_config_error_is_a_value_error():
    assert issubclass(CasnetConfigError, ValueError)


def test_override_validates_like_the_file():
    from casnet.core.config import override
    from casnet.data.settings import DataConfig

    cfg = DataConfig()
    assert override(cfg, n_galaxies=5, source=None).n_galaxies == 5
    assert override(cfg) is cfg
    with pytest.raises(CasnetConfigError, match="n_galaxies = 0"):
        override(cfg, n_galaxies=0)


def test_crop_larger_than_the_stamps_fails_at_load_time():
    with pytest.raises(CasnetConfigError, match=r"select.crop_size \(120\).*simulate.stamp_size"):
        parse_params({"select": {"crop_size": 120}})
