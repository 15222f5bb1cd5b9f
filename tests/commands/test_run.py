"""acmix-deploy predict, verify and evaluate (acmix_deploy/commands/run.py), through the real console entry point."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import assert_one_line_error, inproc, run_cli


def test_predict_verify_benchmark_profile(small_artifacts, tmp_path):
    from PIL import Image

    img = tmp_path / "cat.png"
    Image.new("RGB", (90, 70), (200, 120, 40)).save(img)
    onnx_path, ckpt = str(small_artifacts["onnx"]), str(small_artifacts["checkpoint"])

    proc = run_cli("predict", onnx_path, str(img), "--top-k", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    preds = json.loads(proc.stdout)[0]["predictions"]
    assert len(preds) == 2 and preds[0]["probability"] >= preds[1]["probability"]

    proc = run_cli("verify", onnx_path, onnx_path, "--batch", "2")
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stderr
    proc = run_cli("verify", onnx_path, onnx_path, "--rtol", "-1")  # impossible tolerance: must fail
    assert proc.returncode == 1 and "FAIL" in proc.stdout

    out = tmp_path / "bench.json"
    proc = run_cli("benchmark", onnx_path, "--batch", "1,2", "--iters", "2", "--warmup", "0", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert {row["batch"] for row in json.loads(out.read_text())["rows"]} == {1, 2}
    assert_one_line_error(run_cli("benchmark", onnx_path, "--json", str(out)), 1, "--force")
    assert_one_line_error(run_cli("benchmark", onnx_path, "--batch", "x"), 2, "--batch")

    proc = run_cli("profile", onnx_path, "--iters", "1")
    assert proc.returncode == 0 and "attention" in proc.stdout and "layer1.0" in proc.stdout, proc.stderr
    assert_one_line_error(run_cli("profile", ckpt), 2, "ONNX")
    assert_one_line_error(run_cli("predict", onnx_path, str(tmp_path / "none.png")), 1, "no such image")


def test_verify_closes_every_runner_when_a_step_fails(cli_env, tmp_path, monkeypatch):
    from acmix_deploy.runtimes.base import Runner

    loaded, closed = [], []
    activate, close = Runner.activate, Runner.close
    monkeypatch.setattr(Runner, "activate", lambda self: (loaded.append(id(self)), activate(self))[1])
    monkeypatch.setattr(Runner, "close", lambda self: (closed.append(id(self)), close(self))[1])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    assert_one_line_error(inproc("verify", cli_env["onnx"], str(cli_env["fp16"]), "--image", str(bad)), 1, "bad.png")
    assert loaded and set(loaded) <= set(closed)


def test_evaluate_takes_each_precision_from_the_manifest_itself(cli_env, tmp_path):
    """The precision column comes from the artifact's manifest (here embedded: the sidecar is gone)."""
    lone = tmp_path / "lone.fp16.onnx"
    lone.write_bytes(cli_env["fp16"].read_bytes())  # no lone.fp16.onnx.json next to it
    proc = inproc("evaluate", cli_env["onnx"], str(lone), "--data", cli_env["data"])
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("lone.fp16.onnx"))
    assert row.split()[1] == "mixed", proc.stdout
    single = inproc("evaluate", str(lone), "--data", cli_env["data"]).stdout
    assert "manifest    precision mixed" in single


def test_evaluate_without_shared_names_loads_one_model_at_a_time(cli_env, monkeypatch):
    """With --labels no manifest is needed up front, so each artifact is loaded, evaluated and closed in turn."""
    from acmix_deploy.runtimes.onnxruntime import OnnxRuntimeRunner

    loaded: set[int] = set()
    most = [0]
    real_load, real_close = OnnxRuntimeRunner._load, OnnxRuntimeRunner._close

    def counted_load(self):
        loaded.add(id(self))
        most[0] = max(most[0], len(loaded))
        return real_load(self)

    def counted_close(self):
        loaded.discard(id(self))
        return real_close(self)

    monkeypatch.setattr(OnnxRuntimeRunner, "_load", counted_load)
    monkeypatch.setattr(OnnxRuntimeRunner, "_close", counted_close)
    argv = ["evaluate", cli_env["onnx"], str(cli_env["fp16"]), "--data", cli_env["data"], "--labels", cli_env["labels"]]
    proc = inproc(*argv, "--top-k", "1")
    assert proc.returncode == 0, proc.stderr
    assert most[0] == 1 and not loaded


def test_predict_prints_what_ran_and_each_images_time(cli_env):
    import re

    first, second = sorted(Path(cli_env["data"]).rglob("*.png"))[:2]
    proc = inproc("predict", cli_env["onnx"], str(first), str(second), "--top-k", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("onnxruntime:small.onnx [fp32], 64 px, 10 classes; top-2") and "per image" in lines[0]
    assert re.fullmatch(rf"{re.escape(str(first))}  \(\d+\.\d ms\)", lines[1]), lines[1]
    assert re.fullmatch(rf"{re.escape(str(second))}  \(\d+\.\d ms\)", lines[4]), lines[4]
    data = json.loads(inproc("predict", cli_env["onnx"], str(first), "--json").stdout)
    assert data[0]["ms"] > 0 and len(data[0]["predictions"]) == 5


VERIFY_NUMERIC = ("max_abs_diff", "max_abs_ref", "mean_abs_diff", "cosine_min", "top1_agreement", "passed",
                  "tolerance", "abs_error", "rel_error")  # fmt: skip


def _verify_numbers(stdout: str) -> str:
    """The numeric fields of a ``verify --json`` report, as JSON text (compared byte for byte)."""
    report = json.loads(stdout)
    return json.dumps([{k: c["parity"][k] for k in VERIFY_NUMERIC} for c in report["comparisons"]])


def test_verify_load_inputs_reproduces_the_saved_run_byte_for_byte(cli_env, tmp_path):
    from acmix_deploy.verify import verify

    onnx, fp16, saved = cli_env["onnx"], str(cli_env["fp16"]), tmp_path / "in.npz"
    proc = inproc("verify", onnx, fp16, "--seed", "3", "--save-inputs", str(saved), "--json")
    assert proc.returncode == 0 and saved.is_file(), proc.stderr
    runs = [run_cli("verify", onnx, fp16, "--load-inputs", str(saved), "--json") for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    library = verify([onnx, fp16], load_inputs_from=saved).to_dict()
    assert _verify_numbers(runs[0].stdout) == _verify_numbers(runs[1].stdout) == _verify_numbers(proc.stdout)
    assert _verify_numbers(proc.stdout) == _verify_numbers(json.dumps(library))
    assert json.loads(runs[0].stdout)["comparisons"][0]["parity"]["abs_error"]["p99"] > 0


def test_verify_judges_a_variant_by_its_precision_and_shows_what_export_recorded(cli_env, tmp_path):
    onnx, fp16 = cli_env["onnx"], str(cli_env["fp16"])
    proc = inproc("verify", onnx, fp16)
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr
    assert "tolerance (mixed" in proc.stdout and "recorded at export: max|diff|" in proc.stdout
    assert "|diff| p50 / p90 / p99" in proc.stdout and "relative p50 / p90 / p99" in proc.stdout
    strict = inproc("verify", onnx, fp16, "--max-diff", "1e-6", "--min-cosine", "0.9999999")  # fp32-grade bounds
    assert strict.returncode == 1 and "FAIL" in strict.stdout and "user" in strict.stdout


def test_verify_fails_a_corrupted_fp32_artifact_with_exit_1(cli_env, tmp_path):
    from tests.test_verify import corrupted_copy

    bad = corrupted_copy(cli_env["onnx"], tmp_path / "bad.onnx")
    proc = run_cli("verify", cli_env["onnx"], str(bad))
    assert proc.returncode == 1 and "FAIL" in proc.stdout, proc.stdout + proc.stderr


def test_verify_input_and_output_files_are_checked_and_never_clobbered(cli_env, tmp_path):
    onnx, fp16 = cli_env["onnx"], str(cli_env["fp16"])
    out = tmp_path / "outs"
    proc = inproc("verify", onnx, fp16, "--save-outputs", str(out))
    assert proc.returncode == 0 and sorted(p.name for p in out.iterdir()) == ["small.fp16.onnx.npz", "small.onnx.npz"]
    assert_one_line_error(inproc("verify", onnx, fp16, "--save-outputs", str(out)), 1, "--force")
    assert inproc("verify", onnx, fp16, "--save-outputs", str(out), "--force").returncode == 0
    wrong = tmp_path / "wrong.npz"
    import numpy as np

    np.savez(wrong, input=np.zeros((2, 3, 32, 32), np.float32))
    assert_one_line_error(inproc("verify", onnx, fp16, "--load-inputs", str(wrong)), 1, "expected (N, 3, 64, 64)")
    pickled = tmp_path / "p.npz"
    pickled.write_bytes(b"\x80\x04K\x01.")
    assert_one_line_error(inproc("verify", onnx, fp16, "--load-inputs", str(pickled)), 1, "not an .npz")
    image = str(Path(cli_env["data"]) / "3" / "a.png")
    proc = inproc("verify", onnx, fp16, "--image", image, "--load-inputs", str(wrong))
    assert_one_line_error(proc, 2, "exclude each other")
    assert_one_line_error(inproc("verify", onnx, fp16, "--min-agreement", "1.5"), 2, "--min-agreement")
