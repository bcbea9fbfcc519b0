"""``attnserve export`` round-trips every registered architecture into a repository that
reloads with plain ``torch.jit.load`` and reproduces the eager model."""

import json
import warnings
from pathlib import Path
from typing import Dict, Tuple

import pytest
import torch
from torch import Tensor, nn

from models.export import ExportError, ExportRequest, check_round_trip, export_model
from models.repository.config import read_config
from models.repository.formats import TorchScriptFormat, sha256_of
from models.zoo import ARCHITECTURES, build_model, get_architecture
from service.cli import main

SMALL = (48, 64)


def small_size(name: str) -> Tuple[int, int]:
    return SMALL if ARCHITECTURES[name].input_size == (224, 224) else ARCHITECTURES[name].input_size


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_export_round_trips(architecture: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    size = small_size(architecture)
    model = build_model(get_architecture(architecture), 4, size)
    request = ExportRequest(architecture, tmp_path, input_size=size, labels=list("abcd"))
    config = export_model(request, model)

    path = tmp_path / architecture / "1" / "model.pt"
    on_disk = read_config(tmp_path / architecture / "config.json")
    assert on_disk == config
    assert (config.input.height, config.input.width) == size
    assert config.versions[1].sha256 == sha256_of(path)
    assert config.versions[1].architecture == architecture
    loaded = torch.jit.load(str(path))
    x = torch.rand(3, 3, *size)
    with torch.inference_mode():
        expected, expected_maps = model.forward_with_maps(x)
        got, got_maps = loaded.forward_with_maps(x)
        torch.testing.assert_close(loaded(x), model(x), atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)
    assert sorted(got_maps) == config.attention_maps == sorted(expected_maps)
    assert config.map_shapes == {k: list(v.shape[1:]) for k, v in expected_maps.items()}


def test_second_export_is_version_two_and_keeps_the_first(tmp_path: Path) -> None:
    request = ExportRequest("topformer_lite", tmp_path, input_size=(32, 32), num_classes=3)
    export_model(request)
    config = export_model(request)
    assert sorted(config.versions) == [1, 2]
    assert sorted(p.name for p in (tmp_path / "topformer_lite").iterdir()) == [
        "1",
        "2",
        "config.json",
    ]


def test_a_config_from_before_map_shapes_gets_them_from_its_next_version(tmp_path: Path) -> None:
    request = ExportRequest("topformer_lite", tmp_path, input_size=(32, 32), num_classes=3)
    first = export_model(request)
    assert first.map_shapes and set(first.map_shapes) == set(first.attention_maps)
    path = tmp_path / "topformer_lite" / "config.json"
    old = first.model_dump(mode="json", exclude={"map_shapes"})
    path.write_text(json.dumps(old))
    assert read_config(path).map_shapes == {}  # an old config still loads
    assert export_model(request).map_shapes == first.map_shapes


def test_incompatible_new_version_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    export_model(ExportRequest("topformer_lite", tmp_path, input_size=(32, 32), num_classes=3))
    with pytest.raises(ExportError, match="labels"):
        export_model(ExportRequest("topformer_lite", tmp_path, input_size=(32, 32), num_classes=4))
    assert not (tmp_path / "topformer_lite" / "2").exists()
    assert sorted(read_config(tmp_path / "topformer_lite" / "config.json").versions) == [1]


def test_existing_version_is_not_overwritten(tmp_path: Path) -> None:
    request = ExportRequest("topformer_lite", tmp_path, input_size=(32, 32), version=1)
    export_model(request)
    with pytest.raises(ExportError, match="exists"):
        export_model(request)


def test_round_trip_check_refuses_a_file_that_differs(tmp_path: Path) -> None:
    spec = get_architecture("topformer_lite")
    first, second = build_model(spec, 3, (32, 32)), build_model(spec, 3, (32, 32))
    path = tmp_path / "model.pt"
    example = torch.rand(2, 3, 32, 32)
    TorchScriptFormat().save(first, example, path)
    check_round_trip(first, path, example)
    with pytest.raises(ExportError, match="does not reproduce"):
        check_round_trip(second, path, example)


class Unscriptable(nn.Module):
    """Uses a Python construct TorchScript cannot compile, so export must fall back to tracing."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x).mean(dim=(2, 3)) * len({**{"a": 1}})

    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        feature = self.conv(x)
        return feature.mean(dim=(2, 3)) * len({**{"a": 1}}), {"energy": feature.mean(dim=1)}


def test_unscriptable_model_is_traced_with_a_warning(tmp_path: Path) -> None:
    model, example, path = Unscriptable().eval(), torch.rand(2, 3, 8, 8), tmp_path / "model.pt"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TorchScriptFormat().save(model, example, path)
    assert any("falling back to tracing" in str(w.message) for w in caught)
    assert check_round_trip(model, path, example) == {"energy": [8, 8]}


def test_cli_export_with_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = get_architecture("topformer_lite")
    torch.manual_seed(1)
    trained = build_model(spec, 2, (32, 32))
    checkpoint = tmp_path / "weights.pt"
    torch.save({"state_dict": trained.state_dict()}, checkpoint)
    repo = tmp_path / "repo"
    argv = ["export", "topformer_lite", "--repo", str(repo), "--weights", str(checkpoint)]
    argv += ["--input-size", "32", "32", "--labels", "cat,dog", "--name", "pets"]
    assert main(argv) == 0
    assert "exported pets version 1" in capsys.readouterr().out
    config = json.loads((repo / "pets" / "config.json").read_text())
    assert config["labels"] == ["cat", "dog"]
    loaded = torch.jit.load(str(repo / "pets" / "1" / "model.pt"))
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), trained(x), atol=1e-4, rtol=1e-3)


def test_cli_reports_user_errors_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", "no_such_model", "--repo", str(tmp_path)]) == 1
    assert "unknown architecture 'no_such_model'" in capsys.readouterr().err
    assert main(["export", "topformer_lite", "--repo", str(tmp_path), "--name", "../up"]) == 1
    assert "invalid model name" in capsys.readouterr().err
