"""acmix-deploy init, inspect and models (``commands/checkpoints.py``), through the real console entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.test_cli import assert_one_line_error, inproc, run_cli


def test_init_then_inspect(tmp_path):
    out = tmp_path / "r26.pth"
    proc = run_cli("init", "acmix_resnet26", "-o", str(out), "--seed", "3", "--num-classes", "10")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("inspect", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["variant"] == "acmix_resnet26" and info["layout"] == "official-resnet"
    assert info["hparams"]["num_classes"] == 10 and info["metadata"]["arch"] == "acmix_resnet26"
    text = run_cli("inspect", str(out)).stdout
    assert "acmix_resnet26" in text and "assumed" in text


def test_init_is_deterministic_and_never_clobbers(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    for path in (a, b):
        proc = run_cli("init", "acmix_resnet26", "-o", str(path), "--layout", "safetensors")
        assert proc.returncode == 0, proc.stderr
    assert a.read_bytes() == b.read_bytes()
    before = a.read_bytes()
    assert_one_line_error(run_cli("init", "acmix_resnet26", "-o", str(a), "--seed", "1"), 1, "--force")
    assert a.read_bytes() == before
    assert run_cli("init", "acmix_resnet26", "-o", str(a), "--seed", "1", "--force").returncode == 0
    assert a.read_bytes() != before
    assert not [p for p in a.parent.iterdir() if p.name.endswith(".partial")]


def test_resnet_input_size_recorded_by_init_is_used_by_export(tmp_path):
    ckpt = tmp_path / "r26.pth"
    assert run_cli("init", "acmix_resnet26", "-o", str(ckpt), "--img-size", "64").returncode == 0
    shown = run_cli("inspect", str(ckpt)).stdout
    assert "64 px" in shown and "img_size" not in shown.split("assumed")[-1].split("\n")[0]
    proc = run_cli("export", str(ckpt), "-o", str(tmp_path), "--skip-latency")
    assert proc.returncode == 0, proc.stderr
    from acmix_deploy.manifest import read_sidecar

    assert read_sidecar(tmp_path / "r26.onnx").img_size == 64


def test_inspect_refuses_code_executing_pickle(tmp_path):
    payload = tmp_path / "evil.pth"
    sentinel = tmp_path / "ran"
    script = (
        "import os, torch\n"
        "class E:\n"
        f"    def __reduce__(self): return (os.system, ('touch {sentinel}',))\n"
        f"torch.save({{'state_dict': {{}}, 'x': E()}}, {str(payload)!r})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert_one_line_error(run_cli("inspect", str(payload)), 1, "refused")
    assert not sentinel.exists()


def test_inspect_of_a_variant_shows_its_own_parity_vs_fp32(cli_env):
    from acmix_deploy.manifest import read_manifest

    manifest = read_manifest(cli_env["fp16"])
    own = manifest.precision_report["parity"]["max_abs_diff"]
    fp32 = manifest.parity["onnxruntime_vs_torch_reference"]["max_abs_diff"]
    assert f"{own:.2e}" != f"{fp32:.2e}"
    parity = [line for line in inproc("inspect", str(cli_env["fp16"])).stdout.splitlines() if line.startswith("parity")]
    assert len(parity) == 1 and "vs fp32 ONNX" in parity[0] and f"{own:.2e}" in parity[0], parity
    assert f"{fp32:.2e}" not in parity[0]


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        ({"img_size": 96, "preprocessing": {"crop": 96}}, "is not (batch, 3, 96, 96)"),
        ({"batch": {"dynamic": False, "min": 4, "max": 4}}, "the manifest's is fixed 4"),
    ],
)
def test_inspect_refuses_a_manifest_that_contradicts_its_graph(small_artifacts, tmp_path, edit, fragment):
    """The runner and the Triton exporter refused such a manifest; inspect showed it as if true, exit 0."""
    import onnx

    from acmix_deploy.exporters.artifact_info import inspect_onnx
    from acmix_deploy.manifest import MANIFEST_KEY

    proto = onnx.load(str(small_artifacts["onnx"]))
    for prop in proto.metadata_props:
        if prop.key == MANIFEST_KEY:
            data = json.loads(prop.value)
            for key, value in edit.items():
                data[key] = {**data[key], **value} if isinstance(value, dict) else value
            prop.value = json.dumps(data)
    edited = tmp_path / "edited.onnx"
    onnx.save(proto, str(edited))
    assert inspect_onnx(small_artifacts["onnx"]).problem == ""
    assert fragment in inspect_onnx(edited).problem
    proc = inproc("inspect", str(edited))
    assert_one_line_error(proc, 1, "the graph does not match the manifest")
    assert fragment in proc.stderr and "model" in proc.stdout  # what it holds is still shown
    proc = inproc("inspect", str(edited), "--json")
    assert proc.returncode == 1 and fragment in json.loads(proc.stdout)["problem"]
    assert inproc("inspect", str(small_artifacts["onnx"])).returncode == 0
