"""CLI robustness: missing paths, unwritable and existing outputs, bad option values; one line, right code."""

from __future__ import annotations

import pytest

from tests.test_cli import run_cli

from .conftest import assert_clean_error, run_cli_inproc


@pytest.fixture(scope="module")
def env(small_artifacts, image_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_env")
    (root / "file").write_text("a regular file, not a directory\n")
    return {
        "onnx": str(small_artifacts["onnx"]),
        "ckpt": str(small_artifacts["checkpoint"]),
        "img": str(image_corpus["rgb_jpeg"][0]),
        "file": str(root / "file"),
        "missing": str(root / "missing"),
    }


def _fill(args, env):
    return [a.format(**env) for a in args]


NONEXISTENT = [
    ("inspect", "{missing}/x.pth"),
    ("inspect", "{missing}/x.onnx"),
    ("export", "{missing}/x.pth"),
    ("predict", "{missing}/x.onnx", "{img}"),
    ("predict", "{onnx}", "{missing}/cat.jpg"),
    ("verify", "{onnx}", "{missing}/x.onnx"),
    ("benchmark", "{missing}/x.onnx"),
    ("profile", "{missing}/x.onnx"),
    ("build", "{missing}/x.onnx"),
]


@pytest.mark.parametrize("args", NONEXISTENT, ids=lambda a: " ".join(a))
def test_nonexistent_paths(env, args):
    assert_clean_error(run_cli_inproc(*_fill(args, env)), 1, "no such")


def test_triton_nonexistent_artifact(env, tmp_path):
    assert_clean_error(run_cli_inproc("triton", env["missing"] + "/x.onnx", "-o", str(tmp_path / "repo")), 1, "no such")


UNWRITABLE = [
    ("init", "acmix_resnet26", "-o", "{file}/x.pth"),
    ("export", "{ckpt}", "-o", "{file}/out", "--img-size", "64"),
    ("benchmark", "{onnx}", "--iters", "1", "--warmup", "0", "--json", "{file}/b.json"),
    ("benchmark", "{onnx}", "--iters", "1", "--warmup", "0", "--csv", "{file}/b.csv"),
    ("profile", "{onnx}", "--iters", "1", "--json", "{file}/p.json"),
    ("benchmark", "{onnx}", "--iters", "1", "--warmup", "0", "--save-json", "{file}/b.json"),
    ("profile", "{onnx}", "--iters", "1", "--save-json", "{file}/p.json"),
]


@pytest.mark.parametrize(
    "args", UNWRITABLE, ids=lambda a: a[0] + ("-csv" if "--csv" in a else "") + ("-save" if "--save-json" in a else "")
)
def test_unwritable_output_under_a_regular_file(env, args):
    proc = run_cli_inproc(*_fill(args, env))
    assert_clean_error(proc, 1, "not a directory")


def test_triton_repository_under_a_regular_file(env):
    assert_clean_error(run_cli_inproc("triton", env["onnx"], "-o", env["file"] + "/repo"), 1, "not a directory")


@pytest.mark.parametrize("command", ["init", "export", "benchmark", "profile"])
def test_existing_outputs_need_force(env, tmp_path, command):
    target = tmp_path / {"init": "x.pth", "export": "small.onnx", "benchmark": "b.json", "profile": "p.json"}[command]
    target.write_bytes(b"precious")
    args = {
        "init": ["init", "acmix_resnet26", "-o", str(target)],
        "export": ["export", env["ckpt"], "-o", str(tmp_path), "--img-size", "64"],
        "benchmark": ["benchmark", env["onnx"], "--iters", "1", "--warmup", "0", "--json", str(target)],
        "profile": ["profile", env["onnx"], "--iters", "1", "--json", str(target)],
    }[command]
    assert_clean_error(run_cli_inproc(*args), 1, "--force")
    assert target.read_bytes() == b"precious"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_export_refuses_when_only_the_sidecar_exists(env, tmp_path):
    (tmp_path / "small.onnx.json").write_text("{}")
    assert_clean_error(run_cli_inproc("export", env["ckpt"], "-o", str(tmp_path), "--img-size", "64"), 1, "--force")
    assert not (tmp_path / "small.onnx").exists() and (tmp_path / "small.onnx.json").read_text() == "{}"


BAD_VALUES = [
    (("init", "acmix_resnet26", "-o", "x.pth", "--seed", "abc"), "--seed"),
    (("init", "acmix_resnet26", "-o", "x.pth", "--num-classes", "many"), "--num-classes"),
    (("export", "{ckpt}", "--batch", "0"), "--batch"),
    (("export", "{ckpt}", "--max-batch", "0"), "--max-batch"),
    (("export", "{ckpt}", "--format", "tflite"), "--format"),
    (("export", "{ckpt}", "--img-size", "big"), "--img-size"),
    (("predict", "{onnx}", "{img}", "--top-k", "0"), "--top-k"),
    (("predict", "{onnx}", "{img}", "--top-k", "x"), "--top-k"),
    (("predict", "{onnx}"), "IMAGES"),
    (("verify", "{onnx}"), "at least two"),
    (("verify", "{onnx}", "{onnx}", "--batch", "0"), "--batch"),
    (("verify", "{onnx}", "{onnx}", "--rtol", "tiny"), "--rtol"),
    (("benchmark", "{onnx}", "--batch", "0"), "--batch"),
    (("benchmark", "{onnx}", "--batch", "1,,x"), "--batch"),
    (("benchmark", "{onnx}", "--iters", "0"), "--iters"),
    (("benchmark", "{onnx}", "--warmup", "-1"), "--warmup"),
    (("benchmark", "{onnx}", "--seconds", "0"), "--seconds"),
    (("benchmark", "{onnx}", "--concurrency", "-1"), "--concurrency"),
    (("profile", "{onnx}", "--iters", "0"), "--iters"),
    (("profile", "{onnx}", "--batch", "0"), "--batch"),
    (("profile", "{ckpt}"), "ONNX"),
    (("inspect", "{onnx}", "--trt-major", "9"), "--trt-major"),
    (("inspect", "{ckpt}", "--tensorrt"), "ONNX"),
    (("triton", "{onnx}", "-o", "r", "--kind", "tpu"), "--kind"),
    (("triton", "{onnx}", "-o", "r", "--instances", "0"), "--instances"),
    (("triton", "{onnx}", "-o", "r", "--preferred-batch", "-4"), "--preferred-batch"),
    (("build", "{onnx}", "--fp16", "--int8"), "choose one"),
    (("build", "{onnx}", "--workspace", "0"), "--workspace"),
    (("models", "--bogus"), "--bogus"),
    (("verify", "{onnx}", "{onnx}", "--max-diff", "tiny"), "--max-diff"),
    (("evaluate", "{onnx}", "--data", "{missing}", "--batch", "0"), "--batch"),
    (("evaluate", "{onnx}", "--data", "{missing}", "--batch-size", "0"), "--batch"),
    (("export", "{ckpt}", "--int8-target", "gpu"), "--int8-target"),
    (("export", "{ckpt}", "--calib-method", "mse"), "--calib-method"),
    (("export", "{ckpt}", "--calib-samples", "0", "--precision", "int8", "--calib", "."), "--calib-samples"),
    (("benchmark", "{onnx}", "--backend", "tflite"), "--backend"),
    (("profile", "{file}"), "ONNX"),
    (("triton", "{onnx}"), "--output-dir"),
]


@pytest.mark.parametrize(
    ("args", "fragment"), BAD_VALUES, ids=lambda v: " ".join(v[:4]) if isinstance(v, tuple) else None
)
def test_bad_option_values_exit_2(env, tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    proc = run_cli_inproc(*_fill(args, env))
    assert_clean_error(proc, 2, fragment)
    assert not list(tmp_path.iterdir())  # nothing written on bad usage


BAD_VALUES_BUGS = [
    (("export", "{ckpt}", "--opset", "5"), "opset"),
    (("predict", "{onnx}", "{img}", "--backend", "tflite"), "backend"),
    (("benchmark", "{onnx}", "--threads", "-1", "--iters", "1", "--warmup", "0"), "--threads"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD_VALUES_BUGS, ids=lambda v: v[0] if isinstance(v, tuple) else None)
def test_bad_option_values_exit_2_bugs(env, tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    assert_clean_error(run_cli_inproc(*_fill(args, env)), 2, fragment)


def test_labels_file_problems(env, tmp_path):
    assert_clean_error(
        run_cli_inproc("predict", env["onnx"], env["img"], "--labels", str(tmp_path / "none.txt")), 1, "not found"
    )
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    proc = run_cli_inproc("predict", env["onnx"], env["img"], "--labels", str(tmp_path / "three.txt"))
    assert_clean_error(proc, 1, "3 names but the model has 10 classes")


def test_binary_labels_file(env, tmp_path):
    (tmp_path / "labels.bin").write_bytes(bytes(range(128, 256)) * 4)
    proc = run_cli_inproc("predict", env["onnx"], env["img"], "--labels", str(tmp_path / "labels.bin"))
    assert_clean_error(proc, 1, "labels")


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("predict", "{onnx}", "{img}", "--top-k", "0"), 2, "--top-k"),
        (("init", "acmix_resnet26", "-o", "{file}/x.pth"), 1, "not a directory"),
    ],
)
def test_real_entry_point_matches(env, args, code, fragment):
    """The in-process runner reports what `python -m cli` does (spot checks in subprocesses)."""
    args = _fill(args, env)
    real, inproc = run_cli(*args), run_cli_inproc(*args)
    assert_clean_error(real, code, fragment)
    assert (real.returncode, real.stderr.strip()) == (inproc.returncode, inproc.stderr.strip())
