"""Several artifacts compared side by side (``verify``, ``benchmark``, ``evaluate``) must be fed alike.

A checkpoint, its ONNX exports and its engines describe one model in different files, and only
some of them record everything: an ACmix-ResNet checkpoint records no input size, a checkpoint or
an older export names no classes. This module decides, once, what the artifacts of one comparison
share (the input size, the class names) and which options each backend's runner takes, and reads
what an artifact's manifest records about its precision. It opens the runners of a comparison
(:func:`open_runners`) and reuses the manifests they read; it reads metadata itself, through
:func:`acmix_deploy.manifest.find_manifest` only, when no runner's manifest is given. It also owns
the files a comparison's inputs and outputs travel in (``.npz``: :func:`load_inputs` treats one as
untrusted data), so a comparison can be repeated exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import AcmixDeployError
from .manifest import Manifest, find_manifest

if TYPE_CHECKING:
    from .runtimes import Runner


def _is_checkpoint(artifact: str | Path) -> bool:
    """Whether ``artifact``'s suffix says checkpoint (torch); an unknown suffix (a forced backend) is not one."""
    from .runtimes import backend_for

    try:
        return backend_for(artifact) == "torch"
    except AcmixDeployError:
        return False


def _manifest_or_none(artifact: str | Path) -> Manifest | None:
    """The artifact's manifest when it has a readable one (checkpoints have none)."""
    if _is_checkpoint(artifact):
        return None
    try:
        return find_manifest(artifact)
    except AcmixDeployError:  # unreadable metadata: the runner reports it when it loads
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


def open_runners(
    artifacts: Sequence[str | Path],
    backend: str | None = None,
    *,
    threads: int = 0,
    rewrite: bool = True,
    img_size: int | None = None,
) -> list[Runner]:
    """Every artifact's runner, in ``artifacts`` order, with the options of :func:`runner_options`; not loaded,
    except the one whose manifest sizes the checkpoints.

    An ACmix-ResNet checkpoint records no input size (it runs at any), so comparing it with a 64 px
    ONNX means running it at 64 px: without ``img_size``, checkpoints run at the input size of the
    first exported artifact, read by that artifact's runner (which stays loaded; the caller closes
    every runner), so no manifest is read ahead of its runner.
    """
    from .runtimes import backend_for, open_runner

    def options(path: str | Path, size: int | None) -> dict:
        return runner_options(path, backend, threads=threads, rewrite=rewrite, img_size=size)

    runners: dict[int, Runner] = {}
    checkpoints = [i for i, path in enumerate(artifacts) if (backend or backend_for(path)) == "torch"]
    exported = [i for i in range(len(artifacts)) if i not in checkpoints]
    try:
        for i in exported:
            runners[i] = open_runner(artifacts[i], backend, **options(artifacts[i], None))
        size = img_size or (runners[exported[0]].manifest.img_size if exported and checkpoints else None)
        for i in checkpoints:
            runners[i] = open_runner(artifacts[i], backend, **options(artifacts[i], size))
    except BaseException:
        for runner in runners.values():
            runner.close()
        raise
    return [runners[i] for i in range(len(artifacts))]


def shared_class_names(
    artifacts: Sequence[str | Path], data_dir: str | Path, manifests: Sequence[Manifest | None] | None = None
) -> list[str] | None:
    """Class names recorded by one of the artifacts that place the class folders of ``data_dir``: lent to the rest.

    Artifacts compared side by side must index the folders alike; one that names its classes
    (``export --labels``) decides for those that do not (a checkpoint, an older export), through
    :func:`acmix_deploy.evaluate.evaluate`'s ``shared_labels``. "Place" is
    :func:`acmix_deploy.classmap.match_folders`, the rule ``evaluate`` applies to one artifact
    (WordNet ids, names ignoring case and ``_``, any subset), so every artifact places the folders
    as the one naming its classes would alone. ``None`` when none places them, or when the folder
    is unusable (evaluation reports that itself). ``manifests``: the ones the artifacts' runners read
    (so no file is parsed twice); else each artifact's own is read (checkpoints: none).
    """
    from .classmap import match_folders
    from .imagefolder import index_image_folder

    try:
        folders = index_image_folder(data_dir).classes
    except AcmixDeployError:
        return None
    if manifests is None:
        manifests = [_manifest_or_none(artifact) for artifact in artifacts]
    for manifest in manifests:
        if manifest is None or not manifest.labels:
            continue
        try:
            match_folders(folders, manifest.num_classes, labels=manifest.labels, root=data_dir)
        except AcmixDeployError:  # these names place no folder set: evaluating this artifact says why
            continue
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
    random_parity: dict | None = None  # static int8: parity on random inputs (its ``parity`` is on images)
    heldout: dict | None = None  # the export's check on held-out images, when it made one
    calibrated: bool = False  # static int8: calibrated ranges, so random inputs are not representative

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


def recorded_precision(artifact: str | Path, manifest: Manifest | None = None) -> RecordedPrecision:
    """The precision record of ``artifact``'s manifest (embedded, sidecar or engine); empty for checkpoints.

    ``manifest``: the one its runner already read (so the file is not parsed twice); a checkpoint's
    runner describes the model it built, which records no precision, so checkpoints stay empty.
    """
    if manifest is None:
        manifest = _manifest_or_none(artifact)
    elif _is_checkpoint(artifact):
        manifest = None
    if manifest is None:
        return RecordedPrecision()
    report = manifest.precision_report if isinstance(manifest.precision_report, dict) else {}

    def part(key: str) -> dict | None:
        value = report.get(key)
        return value if isinstance(value, dict) else None

    details = report.get("details") if isinstance(report.get("details"), dict) else {}
    random = details.get("random_inputs_parity")
    return RecordedPrecision(
        manifest.precision,
        part("accuracy"),
        part("speed"),
        part("parity"),
        random if isinstance(random, dict) else None,
        part("heldout"),
        manifest.calibration is not None,
    )


# ------------------------------------------------------------------------------- input/output files

MAX_ARRAY_FILE_BYTES = 1 << 30  # an inputs file: 1 GiB of float32 is ~20,000 images at 64 px, 1,700 at 224
MAX_INPUT_BATCH = 65536  # as the CLI's --batch bound


class ArrayFileError(AcmixDeployError):
    """An inputs file (``verify --load-inputs``) is not the arrays this comparison feeds."""


def _shown(name: object) -> str:
    from .text import safe_text

    return safe_text(repr(name), 80)


INPUTS_KIND = "acmix_inputs_kind"  # the optional array of an inputs file saying what the inputs were
INPUT_KINDS = ("random", "images")


def load_inputs(path: str | Path, input_name: str, img_size: int) -> tuple[np.ndarray, str]:
    """The input batch saved in ``path`` (``verify --save-inputs``), checked as untrusted data, and its kind.

    The file must be an ``.npz`` (a zip of ``.npy`` arrays, never a pickle) holding one array named
    after the artifact's input, float32 of shape (N, 3, img_size, img_size) with finite values, at most
    :data:`MAX_ARRAY_FILE_BYTES` once unpacked, and optionally :data:`INPUTS_KIND`, a string in
    :data:`INPUT_KINDS` (``verify`` writes it so a reloaded run is judged as the saving one was; a file
    without it holds the user's own data: ``"images"``). Exactly float32: any conversion would make
    the comparison differ from the run that saved it.

    Raises:
        ArrayFileError: any of the above does not hold (one line, naming the file).
    """
    import zipfile

    path = Path(path)
    name = _shown(str(path))
    if not path.is_file():
        raise ArrayFileError(f"{name}: no such inputs file")
    if not zipfile.is_zipfile(path):
        raise ArrayFileError(f"{name}: not an .npz file (a zip of .npy arrays, as verify --save-inputs writes)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArrayFileError(f"{name}: unreadable .npz ({type(exc).__name__})") from None
    found = sorted(m.filename for m in members[:8])
    if f"{input_name}.npy" not in found or not set(found) <= {f"{input_name}.npy", f"{INPUTS_KIND}.npy"}:
        raise ArrayFileError(
            f"{name}: expected one array named {input_name!r} (the artifact's input), found {_shown(found)}"
        )
    if sum(m.file_size for m in members) > MAX_ARRAY_FILE_BYTES:
        raise ArrayFileError(f"{name}: the arrays unpack to more than {MAX_ARRAY_FILE_BYTES >> 20} MiB")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            x = arrays[input_name]
            kind = arrays[INPUTS_KIND] if INPUTS_KIND in arrays.files else np.array("images")
    except Exception as exc:  # noqa: BLE001 - numpy/zipfile raise assorted types on a forged file
        raise ArrayFileError(f"{name}: unreadable array {input_name!r} ({type(exc).__name__})") from None
    if kind.dtype.kind != "U" or kind.ndim != 0 or str(kind) not in INPUT_KINDS:
        raise ArrayFileError(f"{name}: {INPUTS_KIND!r} must be one of {list(INPUT_KINDS)}")
    expected = f"(N, 3, {img_size}, {img_size})"
    if x.dtype != np.float32:
        raise ArrayFileError(f"{name}: {input_name!r} is {x.dtype.str}, expected float32 {expected}")
    if x.ndim != 4 or x.shape[1:] != (3, img_size, img_size):
        raise ArrayFileError(f"{name}: {input_name!r} has shape {tuple(x.shape)}, expected {expected}")
    if not 1 <= x.shape[0] <= MAX_INPUT_BATCH:
        raise ArrayFileError(f"{name}: {input_name!r} holds {x.shape[0]} inputs, expected 1..{MAX_INPUT_BATCH}")
    if not np.isfinite(x).all():
        raise ArrayFileError(f"{name}: {input_name!r} contains NaN or Inf")
    return np.ascontiguousarray(x), str(kind)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``arrays`` as the bytes of an uncompressed ``.npz`` (written atomically by the caller)."""
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def output_file_names(artifacts: Sequence[str | Path]) -> list[str]:
    """One ``.npz`` name per artifact for ``verify --save-outputs``: its file name, made unique (``-2``...)."""
    import re

    names: list[str] = []
    for artifact in artifacts:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(artifact).name).lstrip(".") or "artifact"
        name, n = f"{stem}.npz", 2
        while name in names:
            name, n = f"{stem}-{n}.npz", n + 1
        names.append(name)
    return names


__all__ = [
    "INPUTS_KIND",
    "INPUT_KINDS",
    "ArrayFileError",
    "RecordedPrecision",
    "load_inputs",
    "npz_bytes",
    "open_runners",
    "output_file_names",
    "recorded_precision",
    "runner_options",
    "shared_class_names",
]
