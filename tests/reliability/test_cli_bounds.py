"""Numeric options are range-checked (NaN, inf, zero, negative, absurd) and names stay inside --output-dir."""

from __future__ import annotations

import pytest

from .conftest import assert_clean_error
from .test_hostile_corpus import _bounded


@pytest.mark.parametrize("seconds", ["nan", "inf", "-1", "0", "1e9"])
def test_benchmark_seconds_is_bounded(small_artifacts, seconds):
    # Before: --seconds nan passed the "<= 0" check and the benchmark never ended.
    proc = _bounded("benchmark", str(small_artifacts["onnx"]), "--seconds", seconds)
    assert_clean_error(proc, 2, "--seconds")


@pytest.mark.parametrize("batch", ["1000000000", "0", "1,-4"])
def test_benchmark_batch_sizes_are_bounded(small_artifacts, batch):
    assert_clean_error(_bounded("benchmark", str(small_artifacts["onnx"]), "--batch", batch), 2, "--batch")


@pytest.mark.parametrize("name", ["../x", "/tmp/abs", "a/b", ".hidden", "..", "x\x1b[2J"])
def test_export_name_must_stay_inside_the_output_dir(small_artifacts, tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    before = set(tmp_path.rglob("*"))
    proc = _bounded("export", str(small_artifacts["checkpoint"]), "-o", str(out), "--name", name, "--skip-latency")
    assert_clean_error(proc, 2, "--name")
    assert "\x1b" not in proc.stderr and set(tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    ("option", "value"), [("--img-size", "1000000000"), ("--img-size", "0"), ("--max-batch", "10000000")]
)
def test_export_sizes_are_bounded_before_any_work(small_artifacts, tmp_path, option, value):
    proc = _bounded("export", str(small_artifacts["checkpoint"]), "-o", str(tmp_path), option, value, "--skip-latency")
    assert_clean_error(proc, 2, option)
    assert list(tmp_path.iterdir()) == []


def test_export_labels_file_is_refused_before_the_export_runs(small_artifacts, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat/dog\n" + "\n".join(str(i) for i in range(1, 10)) + "\n")
    out = tmp_path / "out"
    proc = _bounded("export", str(small_artifacts["checkpoint"]), "-o", str(out), "--labels", str(labels))
    assert_clean_error(proc, 1, "line 1")
    assert not out.exists() or list(out.iterdir()) == []


def test_error_lines_show_control_characters_escaped(tmp_path):
    image = tmp_path / "img.png"
    image.write_bytes(b"")
    evil = tmp_path / "x\x1b]0;owned\x07\x1b[2J\r.onnx"
    proc = _bounded("predict", str(evil), str(image))
    assert proc.returncode != 0 and "\\x1b]0;owned\\x07" in proc.stderr
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr and "\x07" not in proc.stderr
