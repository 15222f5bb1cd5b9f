"""Several artifacts compared side by side (``verify``, ``benchmark``, ``evaluate``) must be fed alike.

A checkpoint, its ONNX exports and its engines describe one model in different files, and only
some of them record everything: an ACmix-ResNet checkpoint records no input size, a checkpoint or
an older export names no classes. This module decides, once, what the artifacts of one comparison
share (the input size, the class names) and which options each backend's runner takes, and reads
what an artifact's manifest records about its precision. It reads metadata through
:func:`acmix_deploy.manifest.find_manifest` only and imports a runtime only to open an ONNX model
that carries no manifest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import AcmixDeployError
from .manifest import Manifest, find_manifest


def _manifest_or_none(artifact: str | Path) -> Manifest | None:
    """The artifact's manifest when it has a readable one (checkpoints have none)."""
    from .runtimes import backend_for

    try:
        if backend_for(artifact) == "torch":
            return None
        return find_manifest(artifact)
    except AcmixDeployError:  # unknown suffix, unreadable metadata: the runner reports it when it loads
        return None


def runner_options(
    artifact: str | Path,
    backend: str | None = None,
    *,
    threads: int = 0,
    rewrite: bool = True,
    img_size: int | None = None,
) -> dict:
    """The keyword options :func:`acmix_deploy.runtimes.open_runner` takes for ``artifact`` on its backend.

    ``threads`` (0: ONNX Runtime's default) applies to ONNX Runtime; ``rewrite`` and ``img_size``
    to checkpoints run by torch; engines take none of them.
    """
    from .runtimes import backend_for

    chosen = backend or backend_for(artifact)
    if chosen == "onnxruntime":
        return {"threads": threads} if threads else {}
    if chosen == "torch":
        return {"rewrite": rewrite, **({"img_size": img_size} if img_size else {})}
    return {}


def shared_img_size(
    artifacts: Sequence[str | Path], backend: str | None = None, img_size: int | None = None
) -> int | None:
    """The input size checkpoints should run at: ``img_size``, else that of the first exported artifact.

    An ACmix-ResNet checkpoint records no input size (it runs at any), so comparing it with a 64 px
    ONNX means running it at 64 px. ``None`` when every artifact is a checkpoint.
    """
    if img_size:
        return img_size
    from .runtimes import backend_for, open_runner

    for path in artifacts:
        if (backend or backend_for(path)) == "torch":
            continue
        manifest = _manifest_or_none(path)
        if manifest is not None:
            return manifest.img_size
        with open_runner(path, backend) as runner:  # an ONNX without a manifest: its input shape says
            return runner.manifest.img_size
    return None


def shared_class_names(artifacts: Sequence[str | Path], data_dir: str | Path) -> list[str] | None:
    """Class names recorded by one of the artifacts that fit the class folders of ``data_dir``: used for all.

    Artifacts compared side by side must index the folders alike; one that names its classes
    (``export --labels``) decides for those that do not (a checkpoint, an older export). ``None``
    when none fits, or when the folder is unusable (evaluation reports that itself).
    """
    from .imagefolder import index_image_folder, labels_fit_folders

    try:
        folders = index_image_folder(data_dir).classes
    except AcmixDeployError:
        return None
    for artifact in artifacts:
        manifest = _manifest_or_none(artifact)
        if manifest is not None and manifest.labels and labels_fit_folders(manifest.labels, folders):
            return list(manifest.labels)
    return None


@dataclass(frozen=True)
class RecordedPrecision:
    """What an artifact's manifest records about its precision (fp16/int8 exports measure it).

    Attributes:
        precision: ``fp32``, ``mixed`` (fp16), ``int8``...; empty when there is no manifest.
        accuracy: the variant's accuracy on ``--eval-data`` at export, when measured.
        speed: its batch-1 ONNX Runtime CPU latency against fp32's, when measured.
        parity: its parity against the fp32 ONNX, for variants.
    """

    precision: str = ""
    accuracy: dict | None = None
    speed: dict | None = None
    parity: dict | None = None

    def describe(self) -> str:
        """One line: ``precision mixed; recorded at export: top-1 ...; ORT CPU batch 1 ...``; empty without one."""
        if not self.precision:
            return ""
        text = f"precision {self.precision}"
        acc = self.accuracy
        if acc and "top1_percent" in acc:
            text += (
                f"; recorded at export: top-1 {acc['top1_percent']}% vs fp32 {acc.get('fp32_top1_percent')}%"
                f" on {acc.get('images')} images, agreement {acc.get('top1_agreement_percent')}%"
            )
        if self.speed and "speedup_vs_fp32" in self.speed:
            from .timing import SpeedComparison, speed_verdict

            recorded = SpeedComparison.from_record(self.speed["speedup_vs_fp32"], self.speed.get("noise_pct"))
            text += f"; ORT CPU batch 1 {speed_verdict(recorded, 'fp32')}"
        return text


def recorded_precision(artifact: str | Path) -> RecordedPrecision:
    """The precision record of ``artifact``'s manifest (embedded, sidecar or engine); empty for checkpoints."""
    manifest = _manifest_or_none(artifact)
    if manifest is None:
        return RecordedPrecision()
    report = manifest.precision_report if isinstance(manifest.precision_report, dict) else {}

    def part(key: str) -> dict | None:
        value = report.get(key)
        return value if isinstance(value, dict) else None

    return RecordedPrecision(manifest.precision, part("accuracy"), part("speed"), part("parity"))


__all__ = [
    "RecordedPrecision",
    "recorded_precision",
    "runner_options",
    "shared_class_names",
    "shared_img_size",
]
