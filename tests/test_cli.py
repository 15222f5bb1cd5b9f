"""The CLI's shared conventions end to end (one-line errors, --json, renamed options), through the real console
entry point in a subprocess; each command group's own tests are in tests/commands/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "acmix_deploy.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert any(fragment in line for line in lines), proc.stderr


def test_version_and_models():
    from acmix_deploy import __version__

    assert run_cli("--version").stdout.strip() == f"acmix-deploy {__version__}"
    proc = run_cli("models")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split()[0] for line in proc.stdout.splitlines()[1:]]
    assert rows == ["acmix_resnet26", "acmix_resnet38", "acmix_resnet50", "acmix_swin_tiny", "acmix_swin_small"]
    assert "18.33M" in proc.stdout and "4.65" in proc.stdout


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("inspect", "/nonexistent/x.pth"), 1, "no such file"),
        (("init", "resnet50", "-o", "x.pth"), 2, "unknown model"),
        (("init", "acmix_resnet26", "-o", "x.pth", "--layout", "zip"), 2, "unknown layout"),
        (("init", "acmix_resnet26", "-o", "x.pth", "--img-size", "96", "--layout", "state-dict"), 2, "cannot record"),
        (("init", "acmix_resnet26", "-o", "x.pth", "--img-size", "8"), 2, "too small"),
        (("init", "acmix_swin_tiny", "-o", "x.pth", "--img-size", "64"), 2, "not a multiple of window_size"),
        (("init", "acmix_resnet26", "-o", "/proc/nope/x.pth"), 1, "cannot write"),
        (("init", "acmix_resnet26"), 2, "--output"),
        (("export", "x.pth", "--batch", "4", "--precision", "fp16"), 2, "dynamic-batch"),
        (("export", "x.pth", "--format", "engine", "--precision", "int8", "--calib", "."), 2, "--int8-target tensorrt"),
        (("frobnicate",), 2, "No such command"),
        (
            ("sensitivity", "x.onnx", "--level", "stage,leaves"),
            2,
            "error: --level: unknown level(s) 'leaves'; choose one or more of stage, block, branch",
        ),
    ],
)
def test_bad_input_is_one_line_and_non_zero(tmp_path, args, code, fragment):
    assert_one_line_error(run_cli(*args, cwd=tmp_path), code, fragment)


def test_sensitivity_refuses_int8_without_calibration_in_the_librarys_words(small_artifacts):
    """The library's check of sensitivity's options is the only one (its wording), made before any work: exit 2."""
    proc = inproc("sensitivity", str(small_artifacts["onnx"]), "--precision", "int8")
    assert_one_line_error(proc, 2, "error: int8 sensitivity needs calibration images (calib / --calib DIR)")


# -- one vocabulary, one exit-code map, --json means print ---------------------------------------------


def inproc(*args: str):
    from tests.reliability.conftest import run_cli_inproc

    return run_cli_inproc(*args)


def test_help_shows_no_type_after_flags_and_offers_the_library_choices(monkeypatch):
    from acmix_deploy.checkpoint import LAYOUTS
    from acmix_deploy.exporters.pipeline import CALIBRATION_METHODS, FORMATS, INT8_TARGETS
    from acmix_deploy.runtimes import BACKENDS

    monkeypatch.setenv("COLUMNS", "220")
    export_help = inproc("export", "--help").stdout
    assert "--force" in export_help and "--skip-latency" in export_help
    assert "<bool>" not in export_help + inproc("--help").stdout
    for choices in (FORMATS, INT8_TARGETS, CALIBRATION_METHODS):
        assert "<" + "|".join(choices) + ">" in export_help
    assert "<" + "|".join(BACKENDS) + ">" in inproc("predict", "--help").stdout
    init_help = inproc("init", "--help").stdout
    assert all(layout in init_help for layout in LAYOUTS)


@pytest.mark.parametrize(
    "args",
    [
        ("models",),
        ("inspect", "{onnx}"),
        ("inspect", "{ckpt}"),
        ("predict", "{onnx}", "{image}"),
        ("verify", "{onnx}", "{fp16}", "--max-diff", "0.05", "--min-cosine", "0.99"),
        ("benchmark", "{onnx}", "--iters", "1", "--warmup", "0"),
        ("profile", "{onnx}", "--iters", "1"),
        ("evaluate", "{onnx}", "{fp16}", "--data", "{data}"),
    ],
    ids=lambda a: a[0] + ("-ckpt" if "{ckpt}" in a else ""),
)
def test_json_prints_the_report_and_nothing_else_on_stdout(cli_env, args):
    env = {**cli_env, "image": str(Path(cli_env["data"]) / "3" / "a.png")}
    proc = inproc(*[a.format(**env) for a in args], "--json")
    assert proc.returncode == 0, proc.stderr
    assert isinstance(json.loads(proc.stdout), dict | list)


def test_export_json_sends_progress_to_stderr(small_artifacts, tmp_path):
    proc = inproc(
        "export",
        str(small_artifacts["checkpoint"]),
        "-o",
        str(tmp_path),
        "--img-size",
        "64",
        "--skip-latency",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["artifacts"] == [str(tmp_path / "small.onnx"), str(tmp_path / "small.onnx.json")]
    assert "] load" in proc.stderr and "] write" in proc.stderr


@pytest.mark.parametrize("command", ["benchmark", "profile", "evaluate"])
def test_save_json_writes_the_file_and_the_old_spelling_still_does(cli_env, tmp_path, command):
    base = {
        "benchmark": ["benchmark", cli_env["onnx"], "--iters", "1", "--warmup", "0"],
        "profile": ["profile", cli_env["onnx"], "--iters", "1"],
        "evaluate": ["evaluate", cli_env["onnx"], "--data", cli_env["data"]],
    }[command]
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    proc = inproc(*base, "--save-json", str(new))
    assert proc.returncode == 0 and new.is_file() and "deprecated" not in proc.stderr, proc.stderr
    assert proc.stdout.strip() and not proc.stdout.lstrip().startswith(("{", "["))  # the table, not JSON
    proc = inproc(*base, "--json", str(old))
    assert proc.returncode == 0 and "--save-json" in proc.stderr and "deprecated" in proc.stderr, proc.stderr
    written, again = json.loads(new.read_text()), json.loads(old.read_text())
    assert type(written) is type(again) and (not isinstance(written, dict) or written.keys() == again.keys())
    assert_one_line_error(inproc(*base, "--save-json", str(new)), 1, "--force")


def test_renamed_options_keep_their_old_spelling_with_a_note(cli_env, tmp_path):
    onnx, fp16 = cli_env["onnx"], str(cli_env["fp16"])
    proc = inproc("verify", onnx, fp16, "--rtol", "0.05", "--min-cosine", "0.99")
    assert proc.returncode == 0 and "--max-diff" in proc.stderr and "deprecated" in proc.stderr, proc.stderr
    assert inproc("verify", onnx, onnx, "--max-diff", "-1").returncode == 1  # the new name binds the same bound
    proc = inproc(
        "evaluate", onnx, "--data", cli_env["data"], "--batch-size", "3", "--classes", cli_env["labels"], "--json"
    )
    assert proc.returncode == 0, proc.stderr
    assert "--batch" in proc.stderr and "--labels" in proc.stderr and json.loads(proc.stdout)["num_images"] == 10
    proc = inproc("evaluate", onnx, "--data", cli_env["data"], "--batch", "3", "--labels", cli_env["labels"])
    assert proc.returncode == 0 and "deprecated" not in proc.stderr, proc.stderr
    proc = inproc("triton", onnx, "--output", str(tmp_path / "repo"), "--name", "m")
    assert proc.returncode == 0 and "--output-dir" in proc.stderr, proc.stderr
    assert (tmp_path / "repo" / "m" / "1" / "model.onnx").is_file()
    assert_one_line_error(inproc("triton", onnx, "--name", "m"), 2, "--output-dir")


def test_old_json_file_spelling_is_rewritten_only_where_it_wrote_a_file():
    from acmix_deploy.cli import modern_argv

    assert modern_argv(["benchmark", "a.onnx", "--json", "b.json"]) == ["benchmark", "a.onnx", "--save-json", "b.json"]
    assert modern_argv(["evaluate", "a.onnx", "--json=r.json"]) == ["evaluate", "a.onnx", "--save-json", "r.json"]
    for unchanged in (
        ["benchmark", "--json", "a.onnx"],  # an artifact after the flag stays an artifact
        ["--debug", "profile", "m.onnx", "--json", "--iters", "1"],
        ["profile", "m.onnx", "--json"],
        ["verify", "a.onnx", "b.onnx", "--json", "x.json"],  # verify's --json always printed
    ):
        assert modern_argv(list(unchanged)) == unchanged
