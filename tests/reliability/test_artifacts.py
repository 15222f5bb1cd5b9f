"""ONNX models and TensorRT engines that are broken, foreign or mismatched with their manifest."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest

from acmix_deploy import Predictor
from acmix_deploy.errors import AcmixDeployError
from acmix_deploy.manifest import MANIFEST_KEY, ManifestError
from acmix_deploy.runtimes.base import MissingDependencyError, RunnerError

from .conftest import assert_clean_error, run_cli_inproc, tiny_classifier


@pytest.fixture(scope="module")
def onnx_corpus(small_artifacts, tmp_path_factory):
    import onnx

    root = tmp_path_factory.mktemp("onnx_corpus")
    data = small_artifacts["onnx"].read_bytes()
    (root / "truncated.onnx").write_bytes(data[: len(data) // 2])
    (root / "text.onnx").write_text("definitely not protobuf\n")
    (root / "empty.onnx").write_bytes(b"")
    tiny_classifier(root / "generic.onnx")
    tiny_classifier(root / "vector.onnx", image_input=False)
    # A generic 32 px graph whose sidecar manifest says 64 px.
    tiny_classifier(root / "sidecar_mismatch.onnx")
    manifest = json.loads((small_artifacts["onnx"].with_name("small.onnx.json")).read_text())
    (root / "sidecar_mismatch.onnx.json").write_text(json.dumps(manifest))
    # Our own export whose embedded manifest claims another resolution.
    proto = onnx.load(small_artifacts["onnx"])
    for prop in proto.metadata_props:
        if prop.key == MANIFEST_KEY:
            edited = json.loads(prop.value)
            edited["img_size"] = 96
            edited["preprocessing"]["crop"] = 96
            prop.value = json.dumps(edited)
    onnx.save(proto, root / "embedded_mismatch.onnx")
    # Our own (dynamic-batch) export whose embedded manifest claims a fixed batch of 4.
    proto = onnx.load(small_artifacts["onnx"])
    for prop in proto.metadata_props:
        if prop.key == MANIFEST_KEY:
            prop.value = json.dumps({**json.loads(prop.value), "batch": {"dynamic": False, "min": 4, "max": 4}})
    onnx.save(proto, root / "batch_mismatch.onnx")
    return root


REFUSED = {
    "truncated.onnx": (RunnerError, "onnxruntime cannot load it"),
    "text.onnx": (RunnerError, "onnxruntime cannot load it"),
    "empty.onnx": (RunnerError, "onnxruntime cannot load it"),
    "vector.onnx": (RunnerError, "not an image batch"),
    "sidecar_mismatch.onnx": (ManifestError, "does not match the manifest"),
    "embedded_mismatch.onnx": (ManifestError, "does not match the manifest"),
    "batch_mismatch.onnx": (ManifestError, "the manifest's is fixed 4"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_bad_onnx_is_refused_by_the_predictor(onnx_corpus, name):
    error, fragment = REFUSED[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=fragment):
            Predictor.load(onnx_corpus / name)


@pytest.mark.parametrize("name", list(REFUSED))
def test_bad_onnx_is_refused_by_cli_predict(onnx_corpus, image_corpus, name):
    proc = run_cli_inproc("predict", str(onnx_corpus / name), str(image_corpus["rgb_jpeg"][0]))
    assert_clean_error(proc, 1, REFUSED[name][1])


def test_foreign_classifier_is_served_with_a_warning(onnx_corpus, image_corpus):
    """Documented decision: a manifest-less (N,3,S,S)->(N,C) ONNX is a generic classifier, with a warning."""
    with pytest.warns(UserWarning, match="no acmix-deploy manifest"):
        predictor = Predictor.load(onnx_corpus / "generic.onnx")
    assert predictor.manifest.family == "generic" and predictor.manifest.img_size == 32
    assert predictor.manifest.num_classes == 5
    preds = predictor.predict([str(image_corpus["rgb_jpeg"][0]), str(image_corpus["grayscale"][0])], top_k=3)
    assert [len(p) for p in preds] == [3, 3] and all(p[0].label.startswith("class_") for p in preds)
    assert abs(sum(p.probability for p in predictor.predict(image_corpus["rgb_jpeg"][0], top_k=5)[0]) - 1) < 1e-5
    proc = run_cli_inproc("predict", str(onnx_corpus / "generic.onnx"), str(image_corpus["rgb_jpeg"][0]))
    assert proc.returncode == 0 and "class_" in proc.stdout, proc.stderr


def test_copied_artifact_without_manifest_sidecar_still_has_embedded_manifest(small_artifacts, tmp_path):
    shutil.copy(small_artifacts["onnx"], tmp_path / "copy.onnx")  # no .json next to it
    predictor = Predictor.load(tmp_path / "copy.onnx")
    assert predictor.manifest.family == "acmix_resnet" and predictor.manifest.img_size == 64


# -- TensorRT engines ----------------------------------------------------------------------


def _engine_sidecar(small_artifacts, trt="10.15.1.29", gpu="NVIDIA H100 80GB HBM3", cc="9.0") -> dict:
    """The JSON an engine build writes next to the plan, for the small test model."""
    from acmix_deploy.manifest import ENGINE_SIDECAR_FORMAT

    manifest = json.loads(small_artifacts["onnx"].with_name("small.onnx.json").read_text())
    return {
        "format": ENGINE_SIDECAR_FORMAT,
        "format_version": 1,
        "tensorrt": {"version": trt},
        "gpu": {"name": gpu, "compute_capability": cc},
        "precision": "fp32",
        "profile": {"min": [1, 3, 64, 64], "opt": [4, 3, 64, 64], "max": [8, 3, 64, 64]},
        "manifest": manifest,
    }


def test_matching_sidecar_is_accepted(small_artifacts):
    from acmix_deploy.manifest import EngineSidecar
    from acmix_deploy.runtimes.tensorrt import check_engine_compatibility

    sidecar = EngineSidecar.from_dict(_engine_sidecar(small_artifacts))
    check_engine_compatibility(sidecar, "10.15.1.29", "NVIDIA H100 80GB HBM3", "9.0")
    manifest = sidecar.served_manifest()
    assert manifest.batch.to_dict() == {"dynamic": True, "min": 1, "max": 8, "opt": 4} and manifest.img_size == 64


@pytest.mark.parametrize(
    ("running", "fragment"),
    [
        (("10.0.1.6", "NVIDIA H100 80GB HBM3", "9.0"), "TensorRT 10.15.1.29, running 10.0.1.6"),
        (("11.0.0.1", "NVIDIA H100 80GB HBM3", "9.0"), "rebuild it here"),
        (("10.15.1.29", "NVIDIA A100-SXM4-80GB", "8.0"), "compute capability 9.0, this GPU has 8.0"),
        (("10.15.1.29", "NVIDIA H200", "9.0"), "GPU 'NVIDIA H100 80GB HBM3', this is 'NVIDIA H200'"),
    ],
)
def test_sidecar_for_another_tensorrt_or_gpu_is_refused(small_artifacts, running, fragment):
    from acmix_deploy.manifest import EngineSidecar
    from acmix_deploy.runtimes.tensorrt import check_engine_compatibility

    with pytest.raises(RunnerError, match="this engine was built for") as info:
        check_engine_compatibility(EngineSidecar.from_dict(_engine_sidecar(small_artifacts)), *running)
    assert fragment in str(info.value)


FORMAT = {"format": "acmix-deploy.tensorrt-engine"}


@pytest.mark.parametrize(
    ("sidecar", "fragment"),
    [
        ({}, "not an acmix-deploy TensorRT engine sidecar"),
        ([1, 2], "not an acmix-deploy TensorRT engine sidecar"),
        (FORMAT, "format_version None is not supported"),
        ({**FORMAT, "format_version": 2}, "format_version 2 is not supported"),
        ({**FORMAT, "format_version": 1}, "lacks the manifest, profile, TensorRT or GPU"),
        ({**FORMAT, "format_version": 1, "tensorrt": "10", "gpu": {}}, "lacks the manifest, profile, TensorRT or GPU"),
    ],
)
def test_malformed_sidecar_is_refused(sidecar, fragment):
    from acmix_deploy.manifest import EngineSidecar

    with pytest.raises(ManifestError, match=fragment) as info:
        EngineSidecar.from_dict(sidecar)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "no sidecar next to"),
        (b"{not json", "engine sidecar is not valid JSON"),
        (b'{"format": "acmix-deploy.tensorrt-engine", "prof', "engine sidecar is not valid JSON"),
        (b"[1, 2]", "not an acmix-deploy TensorRT engine sidecar"),
        (b'{"format": "acmix-deploy.tensorrt-engine", "name": "\xff\xfe"}', "not UTF-8"),
    ],
    ids=["missing", "not-json", "truncated", "not-an-object", "not-utf8"],
)
def test_corrupt_engine_sidecar_is_one_line_error(tmp_path, content, fragment):
    """Every reader of engine metadata (the runner's and read_manifest's) says what is wrong, in one line."""
    from acmix_deploy.manifest import read_engine_sidecar, read_manifest

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\x00" * 64)
    if content is not None:
        (tmp_path / "m.engine.json").write_bytes(content)
    for read in (read_engine_sidecar, read_manifest):
        with pytest.raises(ManifestError, match=fragment) as info:
            read(engine)
        message = str(info.value)
        assert "\n" not in message and "m.engine" in message and "Traceback" not in message


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda s: s.pop("manifest"), "lacks the manifest, profile"),
        (lambda s: s.pop("profile"), "lacks the manifest, profile"),
        (lambda s: s["profile"].update(max=[]), "profile needs min/opt/max input shapes"),
        (lambda s: s["manifest"].update(img_size="64"), "img_size"),
    ],
    ids=["no-manifest", "no-profile", "empty-profile", "bad-manifest"],
)
def test_sidecar_without_usable_manifest(small_artifacts, tmp_path, mutate, fragment):
    from acmix_deploy.manifest import read_manifest

    sidecar = _engine_sidecar(small_artifacts)
    mutate(sidecar)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\x00" * 64)
    (tmp_path / "m.engine.json").write_text(json.dumps(sidecar))
    with pytest.raises(ManifestError, match=fragment):
        read_manifest(engine)


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


@pytest.mark.skipif(_has_tensorrt(), reason="checks the message shown when TensorRT is missing")
@pytest.mark.parametrize("sidecar", [True, False], ids=["truncated-engine", "missing-sidecar"])
def test_engine_without_tensorrt_names_the_extra(small_artifacts, tmp_path, image_corpus, sidecar):
    from acmix_deploy.runtimes.tensorrt import TensorRTRunner

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ftrt" + b"\x00" * 100)  # a truncated plan
    if sidecar:
        (tmp_path / "m.engine.json").write_text(json.dumps(_engine_sidecar(small_artifacts)))
    with pytest.raises(MissingDependencyError, match=r"acmix-deploy\[tensorrt\]"):
        TensorRTRunner(engine).activate()
    with pytest.raises(MissingDependencyError, match="TensorRT is not installed"):
        Predictor.load(engine)
    proc = run_cli_inproc("predict", str(engine), str(image_corpus["rgb_jpeg"][0]))
    assert_clean_error(proc, 1, "acmix-deploy[tensorrt]")


@pytest.mark.tensorrt
@pytest.mark.skipif(not _has_tensorrt(), reason="needs TensorRT and a GPU")
def test_truncated_engine_with_matching_sidecar_is_refused(small_artifacts, tmp_path):
    import tensorrt

    from acmix_deploy.runtimes.tensorrt import TensorRTRunner, cuda_device_info

    gpu = cuda_device_info(0)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"ftrt" + b"\x00" * 100)
    sidecar = _engine_sidecar(small_artifacts, tensorrt.__version__, gpu["name"], gpu["compute_capability"])
    (tmp_path / "m.engine.json").write_text(json.dumps(sidecar))
    with pytest.raises(RunnerError, match="could not deserialise"):
        TensorRTRunner(engine).activate()
    (tmp_path / "m.engine.json").write_text(json.dumps({**sidecar, "tensorrt": {"version": "9.0.0"}}))
    with pytest.raises(RunnerError, match="rebuild it here"):
        TensorRTRunner(engine).activate()


def test_runner_errors_are_ours(tmp_path):
    """What runners and the manifest reader raise on bad artifacts is ours: one line, caught as AcmixDeployError."""
    from acmix_deploy.manifest import read_manifest
    from acmix_deploy.runtimes import open_runner

    (tmp_path / "broken.onnx").write_bytes(b"not protobuf")
    (tmp_path / "m.engine").write_bytes(b"plan")
    (tmp_path / "m.engine.json").write_text("{")
    failures = [
        (lambda: open_runner(tmp_path / "m.bin2"), RunnerError, "suffix"),
        (lambda: open_runner(tmp_path / "broken.onnx").activate(), RunnerError, "cannot load"),
        (lambda: read_manifest(tmp_path / "m.engine"), ManifestError, "not valid JSON"),
    ]
    for call, error, message in failures:
        try:
            call()
        except AcmixDeployError as exc:  # what the CLI and applications catch
            assert type(exc) is error and message in str(exc) and "\n" not in str(exc), exc
        else:
            pytest.fail(f"no error from {error.__name__} case {message!r}")
