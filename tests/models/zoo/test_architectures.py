"""Every registered architecture builds, scripts, keeps batch items independent, and exposes
exactly the attention maps its names promise."""

import dataclasses

import pytest
import torch

from models.attention import CBAM, name_attention_maps
from models.zoo import ARCHITECTURES, architecture_names, build_model, get_architecture
from models.zoo.registry import resnet
from tests.models.checks import assert_close, assert_maps_close

SMALL = (64, 64)
NUM_CLASSES = 6


def small_size(name: str) -> tuple[int, int]:
    return SMALL if ARCHITECTURES[name].input_size == (224, 224) else ARCHITECTURES[name].input_size


def switch_on_(model: torch.nn.Module) -> torch.nn.Module:
    """Fresh attention branches start switched off (gamma = 0, zero BN weights, identity STN);
    switch them on with moderate values so the tests exercise them."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("gamma") or not param.any():
                param.copy_(torch.rand(param.shape, generator=generator) * 0.5 + 0.25)
    return model.eval()


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def built(request: pytest.FixtureRequest) -> tuple[str, torch.nn.Module, torch.Tensor]:
    name = request.param
    torch.manual_seed(0)
    model = switch_on_(build_model(get_architecture(name), NUM_CLASSES, small_size(name)))
    x = torch.randn(3, 3, *small_size(name))
    return name, model, x


def test_output_shape_and_maps(built: tuple[str, torch.nn.Module, torch.Tensor]) -> None:
    name, model, x = built
    with torch.no_grad():
        out, maps = model.forward_with_maps(x)
        plain = model(x)
    spec = ARCHITECTURES[name]
    expected = (3, NUM_CLASSES) if spec.task == "classification" else (3, NUM_CLASSES, *x.shape[2:])
    assert out.shape == expected
    assert_close(plain, out, atol=1e-4, rtol=1e-3)
    assert sorted(maps) == sorted(name_attention_maps(model))
    assert maps, f"{name} exposes no attention maps"
    for map_name, value in maps.items():
        assert value.shape[0] == 3, map_name
        assert value.dim() in (2, 3), f"{map_name}: {tuple(value.shape)} is not compact"


def test_scripted_equals_eager(built: tuple[str, torch.nn.Module, torch.Tensor]) -> None:
    _, model, x = built
    scripted = torch.jit.script(model)
    with torch.no_grad():
        assert_close(scripted(x), model(x), atol=1e-4, rtol=1e-3)
        out_s, maps_s = scripted.forward_with_maps(x)
        out_e, maps_e = model.forward_with_maps(x)
    assert_close(out_s, out_e, atol=1e-4, rtol=1e-3)
    assert_maps_close(maps_s, maps_e)


def test_batch_item_equals_item_alone(built: tuple[str, torch.nn.Module, torch.Tensor]) -> None:
    _, model, x = built
    with torch.no_grad():
        batched = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
    assert_close(batched, alone, atol=1e-4, rtol=1e-3)


def test_registry_has_the_promised_variety() -> None:
    assert len(architecture_names("classification")) >= 3
    assert len(architecture_names("segmentation")) >= 3
    heads = {ARCHITECTURES[n].head for n in architecture_names("segmentation")}
    assert {"danet", "ccnet", "nonlocal"} <= heads


def test_unknown_architecture_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="se_resnet_sagan"):
        get_architecture("resnet9000")


def test_segmenters_use_output_stride_8() -> None:
    for name in ("danet_resnet", "ccnet_resnet", "nonlocal_resnet"):
        model = build_model(get_architecture(name), 2, (64, 64))
        with torch.no_grad():
            features = model[0](torch.zeros(1, 3, 64, 64))
        assert features.shape[2:] == (8, 8), name


def test_a_stage_takes_an_attention_class_as_well_as_a_name() -> None:
    by_name = dataclasses.replace(get_architecture("cbam_resnet_nonlocal"), name="by_name")
    by_class = dataclasses.replace(by_name, name="by_class", backbone=resnet(CBAM))
    keys = [
        {key: value.shape for key, value in build_model(spec, 2, SMALL).state_dict().items()}
        for spec in (by_name, by_class)
    ]
    assert keys[0] == keys[1]
