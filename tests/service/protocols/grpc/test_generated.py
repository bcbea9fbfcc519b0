"""The checked-in protobuf modules are what ``make proto`` generates from inference.proto, and
that proto is wire-compatible with the one tritonclient was built from (names, numbers, types).

The proto is compiled here into a private descriptor pool: importing the service's
``inference_pb2`` next to tritonclient's copy of the ``inference.*`` names would clash."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from tritonclient.grpc import service_pb2

ROOT = Path(__file__).resolve().parents[4]
PROTO = "service/protocols/grpc/inference.proto"
GENERATED = ["inference_pb2.py", "inference_pb2.pyi", "inference_pb2_grpc.py"]


def protoc(root: Path, out: Path, *flags: str) -> None:
    command = [sys.executable, "-m", "grpc_tools.protoc", "-I", str(root), *flags, PROTO]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr


def stale_modules(root: Path, scratch: Path) -> list[str]:
    """The checked-in generated modules under ``root`` that a fresh generation would change."""
    outputs = [f"--{kind}_out={scratch}" for kind in ("python", "pyi", "grpc_python")]
    protoc(root, scratch, *outputs)
    folder = Path(PROTO).parent
    return [
        name
        for name in GENERATED
        if (root / folder / name).read_bytes() != (scratch / folder / name).read_bytes()
    ]


def test_checked_in_modules_equal_a_fresh_generation(tmp_path: Path) -> None:
    assert stale_modules(ROOT, tmp_path) == []


def test_a_changed_proto_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    folder = Path(PROTO).parent
    shutil.copytree(ROOT / folder, copy / folder)
    proto = copy / PROTO
    proto.write_text(proto.read_text().replace("bool live = 1;", "bool live = 1;\n  int32 x = 2;"))
    (tmp_path / "out").mkdir()
    assert stale_modules(copy, tmp_path / "out") == ["inference_pb2.py", "inference_pb2.pyi"]


def our_descriptors(tmp_path: Path) -> descriptor_pool.DescriptorPool:
    descriptor_set = tmp_path / "inference.pb"
    protoc(ROOT, tmp_path, f"--descriptor_set_out={descriptor_set}")
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return pool


def field_signature(field: FieldDescriptor) -> tuple:
    kind = field.message_type.full_name if field.message_type else None
    return field.name, field.number, field.type, field.is_repeated, kind


def all_messages(message: Descriptor) -> list[Descriptor]:
    nested = [m for inner in message.nested_types for m in all_messages(inner)]
    return [message, *nested]


def test_the_proto_matches_tritonclients(tmp_path: Path) -> None:
    pool = our_descriptors(tmp_path)
    ours = pool.FindFileByName(PROTO)
    theirs = service_pb2.DESCRIPTOR.pool
    checked = 0
    for top in ours.message_types_by_name.values():
        for message in all_messages(top):
            reference = theirs.FindMessageTypeByName(message.full_name)
            for field in message.fields:
                expected = reference.fields_by_name.get(field.name)
                assert expected is not None, f"{message.full_name}.{field.name}"
                assert field_signature(field) == field_signature(expected)
                checked += 1
    service = ours.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    reference_service = theirs.FindServiceByName(service.full_name)
    for method in service.methods:
        expected = reference_service.methods_by_name[method.name]
        assert method.input_type.full_name == expected.input_type.full_name
        assert method.output_type.full_name == expected.output_type.full_name
    assert checked > 50


@pytest.mark.parametrize("method", ["ModelInfer", "ModelMetadata", "RepositoryModelLoad"])
def test_the_service_has_the_rpcs_tritonclient_calls(tmp_path: Path, method: str) -> None:
    service = our_descriptors(tmp_path).FindServiceByName("inference.GRPCInferenceService")
    assert method in service.methods_by_name
