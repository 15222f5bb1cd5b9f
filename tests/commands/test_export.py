"""acmix-deploy export, build, convert and triton (``commands/export.py``), through the real entry point."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import assert_one_line_error, inproc, run_cli


def test_multi_precision_export_refuses_before_writing_anything(tmp_path):
    ckpt = tmp_path / "r26.pth"
    assert run_cli("init", "acmix_resnet26", "-o", str(ckpt), "--img-size", "64").returncode == 0
    (tmp_path / "r26.int8.onnx").write_bytes(b"mine")
    proc = run_cli("export", str(ckpt), "--precision", "fp16,int8", "--int8-target", "cpu-dynamic")
    assert_one_line_error(proc, 1, "r26.int8.onnx already exists")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r26.int8.onnx", "r26.pth"]
    assert (tmp_path / "r26.int8.onnx").read_bytes() == b"mine"


def test_export_end_to_end(tmp_path):
    import acmix_deploy
    from acmix_deploy.checkpoint import save_checkpoint
    from tests.conftest import SMALL_RESNET

    model = acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET)
    ckpt = save_checkpoint(model, tmp_path / "small.pth.tar", layout="official", name="acmix_resnet26")
    out = tmp_path / "out"
    proc = run_cli("export", str(ckpt), "-o", str(out), "--img-size", "64")
    assert proc.returncode == 0, proc.stderr
    assert (out / "small.onnx").is_file() and (out / "small.onnx.json").is_file()
    for stage in ("load", "rewrite", "export", "passes", "validate", "write"):
        assert f"] {stage}" in proc.stdout
    assert "PASS" in proc.stdout and "latency" in proc.stdout and "nodes" in proc.stdout
    assert_one_line_error(run_cli("export", str(ckpt), "-o", str(out), "--img-size", "64"), 1, "--force")
    assert_one_line_error(run_cli("export", str(ckpt), "--batch", "0"), 2, "--batch")
    assert_one_line_error(run_cli("export", str(ckpt), "-o", str(out), "--img-size", "32", "--force"), 1, "too small")
    assert_one_line_error(run_cli("export", str(tmp_path / "nope.pth")), 1, "no such file")


def test_tensorrt_and_triton_commands(small_artifacts, tmp_path):
    onnx_path = str(small_artifacts["onnx"])
    proc = run_cli("inspect", onnx_path, "--tensorrt")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TensorRT 10 readiness" in proc.stdout and "blocker" not in proc.stdout
    assert_one_line_error(run_cli("inspect", str(small_artifacts["checkpoint"]), "--tensorrt"), 2, "ONNX")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert_one_line_error(
            run_cli("build", onnx_path, "-o", str(tmp_path / "m.engine")), 1, "acmix-deploy[tensorrt]"
        )
        assert not (tmp_path / "m.engine").exists()
    assert_one_line_error(run_cli("build", onnx_path, "--fp16", "--int8"), 2, "choose one")
    repo = tmp_path / "repo"
    proc = run_cli("triton", onnx_path, "-o", str(repo), "--name", "acmix", "--preferred-batch", "2,4")
    assert proc.returncode == 0, proc.stderr
    assert (repo / "acmix" / "1" / "model.onnx").is_file() and "tritonserver --model-repository" in proc.stdout
    assert run_cli("triton", onnx_path, "-o", str(repo), "--name", "acmix").returncode == 0
    assert (repo / "acmix" / "2" / "model.onnx").is_file()
    assert_one_line_error(run_cli("triton", onnx_path, "-o", str(repo), "--kind", "tpu"), 2, "--kind")


def test_export_precision_variants(small_artifacts, digits, tmp_path):
    from PIL import Image

    # One folder per class of the 10-class model (an unnamed model's folders are its classes in sorted order).
    calib = tmp_path / "calib" / "0"
    for i in range(10):
        (calib.parent / str(i)).mkdir(parents=True)
        Image.new("RGB", (70, 70), (25 * i, 100, 255 - 20 * i)).save(calib.parent / str(i) / f"{i}.png")
    ckpt, out = str(small_artifacts["checkpoint"]), tmp_path / "out"

    def export_64px(*options: str):
        return run_cli("export", ckpt, "-o", str(out), "--img-size", "64", "--skip-latency", *options)

    proc = export_64px("--precision", "fp16", "--eval-data", str(calib.parent))
    assert proc.returncode == 0, proc.stderr
    assert (out / "small.onnx").is_file() and (out / "small.fp16.onnx").is_file() and "fp16" in proc.stdout
    recorded = json.loads((out / "small.fp16.onnx.json").read_text())["precision_report"]["accuracy"]
    assert recorded["images"] == 10
    proc = run_cli(
        "verify", str(out / "small.onnx"), str(out / "small.fp16.onnx"), "--rtol", "0.05", "--min-cosine", "0.99"
    )
    assert proc.returncode == 0 and "[fp32]" in proc.stdout and "[mixed]" in proc.stdout, proc.stdout + proc.stderr
    # Static int8 is checked on held-out images with bounds that can fail: a random-weight model's near-tied
    # logits would flip top-1 by chance, so it runs on the trained digits model (convert: from its fp32 ONNX).
    proc = run_cli(
        "convert", str(digits["onnx"]), "-o", str(tmp_path / "conv"), "--precision", "int8",
        "--calib", str(digits["train"]), "--calib-samples", "16", "--int8-target", "tensorrt",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "conv" / "r26.int8.onnx.json").read_text())["int8_target"] == "tensorrt"
    proc = export_64px("--precision", "int8", "--int8-target", "cpu-dynamic", "--force")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "small.int8.onnx.json").read_text())["int8_target"] == "cpu-dynamic"
    assert_one_line_error(run_cli("export", ckpt, "--precision", "int8"), 2, "--calib")
    assert_one_line_error(run_cli("export", ckpt, "--precision", "bf16"), 2, "--precision")


def test_export_engine_format_without_tensorrt_writes_nothing(small_artifacts, tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed")
    proc = inproc("export", str(small_artifacts["checkpoint"]), "-o", str(tmp_path), "--format", "engine")
    assert_one_line_error(proc, 1, "TensorRT is not installed")
    assert not list(tmp_path.iterdir())


def test_triton_new_version_keeps_the_models_serving_settings(cli_env, tmp_path):
    repo = str(tmp_path / "repo")
    first = inproc(
        "triton", cli_env["onnx"], "-o", repo, "--name", "m", "--instances", "3", "--max-queue-delay-us", "250"
    )
    assert first.returncode == 0, first.stderr
    again = inproc("triton", cli_env["onnx"], "-o", repo, "--name", "m")  # no serving option given: keep them
    assert again.returncode == 0, again.stderr
    config = (tmp_path / "repo" / "m" / "config.pbtxt").read_text()
    assert (tmp_path / "repo" / "m" / "2" / "model.onnx").is_file()
    assert "count: 3" in config and "max_queue_delay_microseconds: 250" in config, config


def test_convert_adds_variants_to_an_fp32_export_without_force_and_refuses_the_rest(small_artifacts, tmp_path):
    import shutil

    src = tmp_path / "model.onnx"
    shutil.copy(small_artifacts["onnx"], src)
    shutil.copy(str(small_artifacts["onnx"]) + ".json", str(src) + ".json")
    proc = inproc("convert", str(src), "--precision", "fp16,int8", "--int8-target", "cpu-dynamic")
    assert proc.returncode == 0, proc.stderr
    fp16, int8 = tmp_path / "model.fp16.onnx", tmp_path / "model.int8.onnx"
    assert fp16.is_file() and (tmp_path / "model.fp16.onnx.json").is_file() and int8.is_file()
    assert f"{fp16} (+ model.fp16.onnx.json)" in proc.stdout and "int8:" in proc.stdout
    stamp = fp16.read_bytes()
    again = inproc("convert", str(src), "--precision", "fp16")
    assert_one_line_error(again, 1, "model.fp16.onnx")
    assert fp16.read_bytes() == stamp
    assert_one_line_error(inproc("convert", str(fp16)), 1, "convert from the fp32 export")
    assert_one_line_error(inproc("convert", str(src), "--precision", "fp32"), 2, "fp16/int8 variants")
    assert_one_line_error(inproc("convert", str(src), "--precision", "int8"), 2, "--calib")
    # the ORT CPU int8 form, read by inspect --tensorrt: counted findings and the form to export instead
    inspected = inproc("inspect", str(int8), "--tensorrt")
    assert inspected.returncode == 1 and "what to do:" in inspected.stdout, inspected.stdout
    assert inspected.stdout.count("an int8 artifact for ONNX Runtime CPU") == 1  # once, not per finding
    assert "--precision int8 --int8-target tensorrt" in inspected.stdout


def test_export_to_a_file_name_writes_that_file_and_inspect_refuses_a_folder(tmp_path):
    """``-o r50.onnx`` writes r50.onnx (was a folder r50.onnx/ holding r50.onnx); a folder is one error line."""
    from PIL import Image

    import acmix_deploy
    from acmix_deploy.checkpoint import save_checkpoint
    from tests.conftest import SMALL_RESNET

    model = acmix_deploy.build_model("acmix_resnet26", **SMALL_RESNET)
    ckpt = save_checkpoint(model, tmp_path / "small.pth", layout="official", name="acmix_resnet26")
    target = tmp_path / "out" / "r50.onnx"
    proc = run_cli("export", str(ckpt), "-o", str(target), "--img-size", "64", "--skip-latency")
    assert proc.returncode == 0, proc.stderr
    assert target.is_file() and (tmp_path / "out" / "r50.onnx.json").is_file()
    assert run_cli("inspect", str(target), "--json").returncode == 0
    other = str(tmp_path / "x.onnx")
    assert_one_line_error(run_cli("export", str(ckpt), "-o", other, "--name", "y"), 2, "--name")
    assert not (tmp_path / "x.onnx").exists()
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    for path in (folder, tmp_path):  # an .onnx-named folder and a plain one (taken for a checkpoint)
        assert_one_line_error(run_cli("inspect", str(path)), 1, "is a directory, expected a file")
    image = tmp_path / "x.png"
    Image.new("RGB", (64, 64)).save(image)
    for args in (["predict", str(folder), str(image)], ["verify", str(target), str(folder)], ["benchmark", str(folder)],
                 ["profile", str(folder)], ["evaluate", str(folder), "--data", str(tmp_path)]):  # fmt: skip
        assert_one_line_error(inproc(*args), 1, "is a directory, expected a file")


def test_export_into_a_symlinked_folder_is_a_one_line_refusal(small_artifacts, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").symlink_to(elsewhere, target_is_directory=True)
    proc = inproc("export", str(small_artifacts["checkpoint"]), "-o", str(tmp_path / "out"), "--force")
    assert_one_line_error(proc, 1, "is a symbolic link")
    assert not list(elsewhere.iterdir())
