"""The CLI end to end, through the real console entry point in a subprocess."""

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


def test_multi_precision_export_refuses_before_writing_anything(tmp_path):
    ckpt = tmp_path / "r26.pth"
    assert run_cli("init", "acmix_resnet26", "-o", str(ckpt), "--img-size", "64").returncode == 0
    (tmp_path / "r26.int8.onnx").write_bytes(b"mine")
    proc = run_cli("export", str(ckpt), "--precision", "fp16,int8", "--int8-target", "cpu-dynamic")
    assert_one_line_error(proc, 1, "r26.int8.onnx already exists")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r26.int8.onnx", "r26.pth"]
    assert (tmp_path / "r26.int8.onnx").read_bytes() == b"mine"


def test_resnet_input_size_recorded_by_init_is_used_by_export(tmp_path):
    ckpt = tmp_path / "r26.pth"
    assert run_cli("init", "acmix_resnet26", "-o", str(ckpt), "--img-size", "64").returncode == 0
    shown = run_cli("inspect", str(ckpt)).stdout
    assert "64 px" in shown and "img_size" not in shown.split("assumed")[-1].split("\n")[0]
    proc = run_cli("export", str(ckpt), "-o", str(tmp_path), "--skip-latency")
    assert proc.returncode == 0, proc.stderr
    from acmix_deploy.manifest import read_sidecar

    assert read_sidecar(tmp_path / "r26.onnx").img_size == 64


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
    proc = run_cli(
        "export",
        ckpt,
        "-o",
        str(out),
        "--img-size",
        "64",
        "--precision",
        "fp16",
        "--skip-latency",
        "--eval-data",
        str(calib.parent),
    )
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
    proc = run_cli(
        "export",
        ckpt,
        "-o",
        str(out),
        "--img-size",
        "64",
        "--precision",
        "int8",
        "--int8-target",
        "cpu-dynamic",
        "--skip-latency",
        "--force",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "small.int8.onnx.json").read_text())["int8_target"] == "cpu-dynamic"
    assert_one_line_error(run_cli("export", ckpt, "--precision", "int8"), 2, "--calib")
    assert_one_line_error(run_cli("export", ckpt, "--precision", "bf16"), 2, "--precision")


# -- one vocabulary, one exit-code map, --json means print ---------------------------------------------


def inproc(*args: str):
    from tests.reliability.conftest import run_cli_inproc

    return run_cli_inproc(*args)


@pytest.fixture(scope="module")
def cli_env(small_artifacts, tmp_path_factory):
    """The small ONNX, its fp16 variant (made by the library), a 10-class image folder and a labels file."""
    from PIL import Image

    from acmix_deploy.exporters.precision import to_fp16

    root = tmp_path_factory.mktemp("cli_env")
    fp16 = root / "small.fp16.onnx"
    to_fp16(small_artifacts["onnx"], fp16)
    data = root / "digits"
    for c in range(10):
        (data / str(c)).mkdir(parents=True)
        Image.new("RGB", (70, 70), (25 * c, 90, 200 - 15 * c)).save(data / str(c) / "a.png")
    labels = root / "labels.txt"
    labels.write_text("".join(f"{c}\n" for c in range(10)))
    return {
        "onnx": str(small_artifacts["onnx"]),
        "ckpt": str(small_artifacts["checkpoint"]),
        "fp16": fp16,
        "data": str(data),
        "labels": str(labels),
        "root": root,
    }


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


def test_profile_of_an_engine_reaches_the_tensorrt_profiler(tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed: the GPU suite profiles real engines")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"a plan")
    proc = inproc("profile", str(engine), "--iters", "1")
    assert_one_line_error(proc, 1, "TensorRT is not installed")
    assert "arrive" not in proc.stderr


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


def test_inspect_of_a_variant_shows_its_own_parity_vs_fp32(cli_env):
    from acmix_deploy.manifest import read_manifest

    manifest = read_manifest(cli_env["fp16"])
    own = manifest.precision_report["parity"]["max_abs_diff"]
    fp32 = manifest.parity["onnxruntime_vs_torch_reference"]["max_abs_diff"]
    assert f"{own:.2e}" != f"{fp32:.2e}"
    parity = [line for line in inproc("inspect", str(cli_env["fp16"])).stdout.splitlines() if line.startswith("parity")]
    assert len(parity) == 1 and "vs fp32 ONNX" in parity[0] and f"{own:.2e}" in parity[0], parity
    assert f"{fp32:.2e}" not in parity[0]


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


@pytest.mark.parametrize(
    "argv",
    [
        ["benchmark", "{onnx}", "{ckpt}", "--iters", "1", "--warmup", "0", "--warmup-s", "0", "--json"],
        ["benchmark", "{onnx}", "{fp16}", "--iters", "1", "--warmup", "0", "--warmup-s", "0", "--json"],
        ["evaluate", "{onnx}", "{fp16}", "--data", "{data}", "--top-k", "1"],
        ["evaluate", "{fp16}", "--data", "{data}", "--top-k", "1"],
    ],
    ids=["benchmark-checkpoint", "benchmark", "evaluate", "evaluate-one"],
)
def test_side_by_side_commands_read_each_manifest_only_as_its_runner_loads(cli_env, monkeypatch, argv):
    """benchmark and evaluate read an ONNX's metadata only inside its runner's load: the checkpoints' input size,
    the shared class names and the precision column come from the manifests the runners read (before, each was
    read again ahead of or after its runner: shared_img_size, shared_class_names, recorded_precision)."""
    from acmix_deploy.manifest import reader
    from acmix_deploy.runtimes.onnxruntime import OnnxRuntimeRunner

    reads: list[str] = []
    loads: list[str] = []
    real_read, real_load = reader.read_onnx_metadata, OnnxRuntimeRunner._load

    def counted_read(path):
        reads.append(str(path))
        return real_read(path)

    def counted_load(self):
        loads.append(str(self.path))
        return real_load(self)

    monkeypatch.setattr(reader, "read_onnx_metadata", counted_read)
    monkeypatch.setattr(OnnxRuntimeRunner, "_load", counted_load)
    proc = inproc(*(a.format(**cli_env) for a in argv))
    assert proc.returncode == 0, proc.stderr
    assert loads and sorted(reads) == sorted(loads), (reads, loads)


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


# -- convert, predict's timing, inspect --tensorrt's grouped findings ------------------------------------


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


def test_benchmark_stability_json_is_clean_and_progress_goes_to_stderr(small_artifacts):
    onnx_path = str(small_artifacts["onnx"])
    proc = run_cli(
        "benchmark", onnx_path, onnx_path, "--iters", "3", "--warmup-s", "0.05",
        "--stability", "0.01", "--max-windows", "2", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # stdout is the report only
    measured = report["measurements"][0]
    assert measured["warmup"]["seconds"] >= 0.05 and measured["warmup"]["rounds"] >= 1
    assert measured["stability"]["target_pct"] == 0.01 and measured["stability"]["windows"] == 2
    assert measured["stability"]["status"] in {"stable", "unstable"}
    assert all(len(row["window_p50_ms"]) == 2 for row in report["rows"])
    assert "window 2/2" in proc.stderr and "warming up" in proc.stderr
    proc = run_cli("benchmark", onnx_path, "--iters", "2", "--stability", "0.01", "--max-windows", "2")
    assert proc.returncode == 0 and "batch 1: warm-up" in proc.stdout and "min ms" in proc.stdout, proc.stderr
    assert_one_line_error(run_cli("benchmark", onnx_path, "--stability", "nan"), 2, "--stability")
    assert_one_line_error(run_cli("benchmark", onnx_path, "--max-windows", "1"), 2, "--max-windows")


def test_benchmark_floor_reports_each_cpu_artifacts_ratio_to_the_gemm_floor(small_artifacts):
    proc = run_cli("benchmark", str(small_artifacts["onnx"]), "--iters", "2", "--threads", "1", "--floor")
    assert proc.returncode == 0, proc.stderr
    assert "batch 1 floor (fp32 GEMM probe at" in proc.stdout and "x its" in proc.stdout
    assert "(GEMM probe " in proc.stderr  # the progress line labels the probe's median, not as an artifact's
    report = json.loads(run_cli("benchmark", str(small_artifacts["onnx"]), "--iters", "2", "--floor", "--json").stdout)
    assert report["settings"]["floor"]["gflops_by_batch"]["1"] > 0 and report["rows"][0]["ratio_to_floor"] > 0


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
