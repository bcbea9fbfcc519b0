"""Every architecture keeps its ``state_dict`` keys and shapes and its attention-map names.

Trained weights ship in the repository keyed by them, and clients ask for maps by name, so a
rename inside models/ must never reach either. ``frozen_layout.json`` was written once from the
code by ``python -m tests.models.zoo.test_frozen_layout``; rewrite it only for a deliberate,
announced change of an architecture (which also means new weights).
"""

import json
from pathlib import Path
from typing import Dict, List, Union

import pytest

from models.attention import name_attention_maps
from models.zoo import ARCHITECTURES, build_model, get_architecture

FIXTURE = Path(__file__).with_name("frozen_layout.json")
NUM_CLASSES = 10  # any fixed count: only the heads' last layers depend on it

Layout = Dict[str, Union[List[str], Dict[str, List[int]]]]


def layout(name: str) -> Layout:
    """The architecture at its registered input size: map names and state_dict key -> shape."""
    model = build_model(get_architecture(name), NUM_CLASSES)
    return {
        "maps": name_attention_maps(model),
        "state_dict": {key: list(value.shape) for key, value in model.state_dict().items()},
    }


def frozen() -> Dict[str, Layout]:
    return json.loads(FIXTURE.read_text())


def test_every_architecture_is_pinned() -> None:
    assert sorted(frozen()) == sorted(ARCHITECTURES)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_state_dict_keys_shapes_and_map_names_are_unchanged(name: str) -> None:
    expected, actual = frozen()[name], layout(name)
    assert actual["maps"] == expected["maps"]
    expected_keys, actual_keys = expected["state_dict"], actual["state_dict"]
    assert isinstance(expected_keys, dict) and isinstance(actual_keys, dict)
    missing = sorted(set(expected_keys) - set(actual_keys))
    added = sorted(set(actual_keys) - set(expected_keys))
    assert (missing, added) == ([], []), f"{name}: keys missing {missing}, added {added}"
    reshaped = [key for key in expected_keys if actual_keys[key] != expected_keys[key]]
    assert reshaped == [], f"{name}: shapes changed for {reshaped}"


def write_fixture() -> None:
    """One line per key, so a deliberate change reads as a small diff."""
    blocks = []
    for name in sorted(ARCHITECTURES):
        current = layout(name)
        state_dict = current["state_dict"]
        assert isinstance(state_dict, dict)
        keys = ",\n".join(f"      {json.dumps(k)}: {json.dumps(v)}" for k, v in state_dict.items())
        maps = json.dumps(current["maps"])
        blocks.append(
            f'  {json.dumps(name)}: {{\n    "maps": {maps},\n'
            f'    "state_dict": {{\n{keys}\n    }}\n  }}'
        )
    FIXTURE.write_text("{\n" + ",\n".join(blocks) + "\n}\n")


if __name__ == "__main__":
    write_fixture()
