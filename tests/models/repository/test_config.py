"""The config schema refuses what the service could not serve safely."""

from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from models.repository.config import InputSpec, ModelConfig, VersionInfo, read_config, write_config
from models.repository.layout import existing_versions, model_dir, model_names, next_version


def config(**overrides: object) -> ModelConfig:
    fields = {
        "name": "m",
        "task": "classification",
        "input": InputSpec(height=8, width=8),
        "labels": ["a", "b"],
    }
    return ModelConfig.model_validate({**fields, **overrides})


@pytest.mark.parametrize("name", ["../up", "a/b", "..", "", ".hidden", "x" * 65, "a b"])
def test_unsafe_model_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="invalid model name"):
        config(name=name)
    with pytest.raises(ValueError, match="invalid model name"):
        model_dir(Path("/repo"), name)


def test_schema_refuses_bad_values() -> None:
    with pytest.raises(ValidationError, match="unique"):
        config(labels=["a", "a"])
    with pytest.raises(ValidationError, match="task"):
        config(task="detection")
    with pytest.raises(ValidationError, match="std"):
        config(input={"height": 8, "width": 8, "std": [1, 0, 1]})
    with pytest.raises(ValidationError, match="extra"):
        config(colour="red")


def test_write_then_read_round_trips_and_versions_are_found(tmp_path: Path) -> None:
    info = VersionInfo(
        architecture="x",
        torch_version="2.13.0",
        sha256="0" * 64,
        exported_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )
    original = config(name="m").with_version(3, info)
    (tmp_path / "m" / "3").mkdir(parents=True)
    (tmp_path / "m" / "not-a-version").mkdir()
    write_config(original, tmp_path / "m" / "config.json")
    assert read_config(tmp_path / "m" / "config.json") == original
    assert original.latest_version == 3
    assert existing_versions(tmp_path, "m") == [3]
    assert next_version(tmp_path, "m") == 4
    assert next_version(tmp_path, "fresh") == 1
    assert model_names(tmp_path) == ["m"]


def test_map_shapes_name_only_the_models_maps_and_real_dimensions() -> None:
    assert config(attention_maps=["a"], map_shapes={"a": [-1, 8]}).map_shapes == {"a": [-1, 8]}
    with pytest.raises(ValidationError, match="does not have"):
        config(attention_maps=["a"], map_shapes={"b": [8]})
    with pytest.raises(ValidationError, match="positive"):
        config(attention_maps=["a"], map_shapes={"a": [0, 8]})


def test_priority_levels_need_a_default_level_among_them() -> None:
    plain = config().batching
    assert (plain.levels, plain.default_level) == (1, 1)
    ranked = config(batching={"priority_levels": 3, "default_priority_level": 3}).batching
    assert (ranked.levels, ranked.default_level) == (3, 3)
    for levels, default in [(3, 0), (3, 4), (0, 2), (1, 2)]:
        with pytest.raises(ValidationError, match="default_priority_level"):
            config(batching={"priority_levels": levels, "default_priority_level": default})
    with pytest.raises(ValidationError, match="priority_levels"):
        config(batching={"priority_levels": -1})
