"""Our .proto files against Triton's, as compiled into tritonclient: same wire format."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, FileDescriptor
from tritonclient.grpc import model_config_pb2 as triton_config
from tritonclient.grpc import service_pb2 as triton_service

from carepulse.shared.inference.protocol import grpc_service_pb2, model_config_pb2

ROOT = Path(__file__).resolve().parents[3]


def _messages(fd: FileDescriptor) -> dict[str, Descriptor]:
    found: dict[str, Descriptor] = {}

    def walk(d: Descriptor) -> None:
        found[d.full_name] = d
        for n in d.nested_types:
            walk(n)

    for d in fd.message_types_by_name.values():
        walk(d)
    return found


@pytest.mark.parametrize(("ours", "theirs"), [(grpc_service_pb2, triton_service), (model_config_pb2, triton_config)],
                         ids=["grpc_service", "model_config"])
def test_every_message_matches_triton_field_by_field(ours, theirs) -> None:  # noqa: ANN001
    mine, triton = _messages(ours.DESCRIPTOR), _messages(theirs.DESCRIPTOR)
    assert mine, "no messages generated"
    for name, d in mine.items():
        assert name in triton, f"{name} is not a Triton message"
        t = triton[name]
        for f in d.fields:
            tf = t.fields_by_number.get(f.number)
            assert tf is not None, f"{name}.{f.name} = {f.number} has no Triton counterpart"
            assert (f.name, f.type, f.is_repeated, f.message_type and f.message_type.full_name) == (
                tf.name, tf.type, tf.is_repeated, tf.message_type and tf.message_type.full_name), f"{name}.{f.name}"
    for enum in ours.DESCRIPTOR.enum_types_by_name.values():
        theirs_enum = theirs.DESCRIPTOR.enum_types_by_name[enum.name]
        assert {v.name: v.number for v in enum.values} == {v.name: v.number for v in theirs_enum.values}


def test_model_config_messages_are_complete() -> None:
    # config.pbtxt files written for Triton must parse: every field Triton has, we have.
    for name, t in _messages(triton_config.DESCRIPTOR).items():
        mine = _messages(model_config_pb2.DESCRIPTOR)[name]
        assert {f.number for f in t.fields} == {f.number for f in mine.fields}, name


def test_service_methods_match_triton() -> None:
    ours = grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton_service.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == "inference.GRPCInferenceService"
    required = {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
                "ModelConfig", "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"}
    assert required <= set(ours.methods_by_name)
    for m in ours.methods:
        t = theirs.methods_by_name[m.name]
        assert (m.input_type.full_name, m.output_type.full_name) == (t.input_type.full_name, t.output_type.full_name)


def test_generated_code_is_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "protos" / "generate.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_check_detects_stale_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate", ROOT / "protos" / "generate.py")
    assert spec and spec.loader
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    out = tmp_path / "protocol"
    monkeypatch.setattr(generate, "OUT_DIR", out)
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    assert generate.main([]) == 0
    assert generate.main(["--check"]) == 0
    (out / "model_config_pb2.py").write_text((out / "model_config_pb2.py").read_text() + "# edited\n")
    assert generate.main(["--check"]) == 1
    assert generate.main([]) == 0
    (out / "stray_pb2.py").write_text("")
    assert generate.main(["--check"]) == 1
