"""Where a TensorRT engine may run: the version and hardware rules NVIDIA documents, applied before loading.

A TensorRT plan holds kernels chosen for one TensorRT release and one GPU. By default NVIDIA
promises nothing elsewhere, so the runner compares the sidecar with the running TensorRT and GPU
first and refuses a mismatch with a message that says what to rebuild, instead of letting
deserialisation fail obscurely or run untuned tactics. Engines built portable relax this, by the
rules of NVIDIA's TensorRT documentation, which this module follows:

- *Version compatibility* (Developer Guide, "Version Compatibility" / "Engine Compatibility",
  https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/advanced.html; the 11.x
  "Engine Compatibility" page; the 11.4 Support Matrix, "Engine Portability"): an engine built with
  ``BuilderFlag.VERSION_COMPATIBLE`` runs with the same or a *later* TensorRT of the same major,
  never an older one; across majors only two combinations are supported, 8 -> 10 and 10 -> 11.
  Such a plan embeds the lean runtime, host code the runtime must be allowed to run
  (``Runtime.engine_host_code_allowed``, set only for engines whose sidecar says they were built
  version-compatible by us). Built with ``EXCLUDE_LEAN_RUNTIME`` it carries none, so a later
  TensorRT must be given the build release's lean runtime library: we refuse that case with the
  rule instead.
- *Hardware compatibility* (Developer Guide, "Hardware Compatibility"; ``HardwareCompatibilityLevel``
  in the API reference): ``NONE`` (the default) runs only on the kind of GPU that built it;
  ``AMPERE_PLUS`` on any Ampere or newer GPU (compute capability 8.0 and up; newer architectures
  depend on CUDA forward compatibility); ``SAME_COMPUTE_CAPABILITY`` (TensorRT 10.x from the release
  that added it, and 11) on any GPU with the compute capability of the one that built it.

Plain data: nothing here imports TensorRT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from acmix_deploy.manifest import EngineSidecar

from .base import RunnerError

HARDWARE_LEVELS = ("none", "ampere-plus", "same-compute-capability")
#: ``--hardware-compatibility`` choice -> ``trt.HardwareCompatibilityLevel`` member name.
HARDWARE_LEVEL_MEMBERS = {
    "none": "NONE",
    "ampere-plus": "AMPERE_PLUS",
    "same-compute-capability": "SAME_COMPUTE_CAPABILITY",
}
#: (built major, running major) pairs NVIDIA supports for version-compatible engines across majors.
CROSS_MAJOR = {(8, 10), (10, 11)}
VERSION_RULE = (
    "NVIDIA's rule: a version-compatible engine runs with the same or a later TensorRT of its major, "
    "and across majors only 8 -> 10 and 10 -> 11"
)


@dataclass(frozen=True)
class Portability:
    """How portable an engine was built (recorded in the sidecar's ``builder`` entry).

    Attributes:
        version_compatible: built with ``VERSION_COMPATIBLE``.
        exclude_lean_runtime: built with ``EXCLUDE_LEAN_RUNTIME`` (only with ``version_compatible``).
        hardware: one of :data:`HARDWARE_LEVELS`.
    """

    version_compatible: bool = False
    exclude_lean_runtime: bool = False
    hardware: str = "none"

    def __post_init__(self) -> None:
        if self.hardware not in HARDWARE_LEVELS:
            raise RunnerError(
                f"hardware compatibility must be one of {', '.join(HARDWARE_LEVELS)}, got {self.hardware!r}"
            )
        if self.exclude_lean_runtime and not self.version_compatible:
            raise RunnerError("excluding the lean runtime only applies to version-compatible engines")

    def record(self) -> dict:
        return {
            "version_compatible": self.version_compatible,
            "exclude_lean_runtime": self.exclude_lean_runtime,
            "hardware_compatibility": self.hardware,
        }

    @classmethod
    def of_builder(cls, builder: Mapping) -> Portability:
        """From a sidecar's ``builder`` entry; sidecars written before portable engines: not portable."""
        try:
            return cls(
                version_compatible=bool(builder.get("version_compatible", False)),
                exclude_lean_runtime=bool(builder.get("exclude_lean_runtime", False)),
                hardware=str(builder.get("hardware_compatibility", "none")),
            )
        except AttributeError:
            raise RunnerError("the engine sidecar's builder entry must be an object") from None


def _release(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in str(version).split("."))
    except ValueError:
        raise RunnerError(f"cannot read the TensorRT version {version!r}") from None


def _capability(cc: object) -> tuple[int, int] | None:
    try:
        major, minor = str(cc).split(".")
        return int(major), int(minor)
    except ValueError:
        return None


def version_problem(built: str, running: str, portability: Portability) -> str | None:
    """Why an engine built by TensorRT ``built`` cannot run on ``running``; ``None`` when it can."""
    if str(built) == str(running):
        return None
    if not portability.version_compatible:
        return f"TensorRT {built}, running {running} (not built version-compatible)"
    b, r = _release(built), _release(running)
    if r < b:
        return f"TensorRT {built}, running the older {running}; {VERSION_RULE}"
    if b[0] != r[0] and (b[0], r[0]) not in CROSS_MAJOR:
        return f"TensorRT {built}, running {running}; {VERSION_RULE}"
    if portability.exclude_lean_runtime:
        return (
            f"TensorRT {built}, running {running}, and the plan excludes the lean runtime: a later TensorRT "
            "needs the build release's lean runtime library, so run it with the TensorRT that built it or "
            "rebuild without --exclude-lean-runtime"
        )
    return None


def hardware_problem(sidecar: EngineSidecar, gpu_name: str, compute_capability: str, level: str) -> str | None:
    """Why this GPU may not run the engine under hardware-compatibility ``level``; ``None`` when it may."""
    built_cc, running_cc = str(sidecar.compute_capability), str(compute_capability)
    if level == "ampere-plus":
        cc = _capability(running_cc)
        if cc is None or cc < (8, 0):
            return (
                f"compute capability {running_cc}: an ampere-plus engine runs on Ampere and newer GPUs only "
                "(compute capability 8.0 and up; NVIDIA's hardware-compatibility rule)"
            )
        return None
    if built_cc != running_cc:
        rule = "same-compute-capability engines need the same" if level == "same-compute-capability" else "needs"
        return f"compute capability {built_cc}, this GPU has {running_cc} ({rule} compute capability)"
    if level == "none" and str(sidecar.gpu_name) != str(gpu_name):
        return f"GPU {sidecar.gpu_name!r}, this is {gpu_name!r} (built without hardware compatibility)"
    return None


def check_engine_compatibility(
    sidecar: EngineSidecar, trt_version: str, gpu_name: str, compute_capability: str
) -> Portability:
    """Refuse an engine this TensorRT and GPU may not run, by the rules above; return its portability.

    Args:
        sidecar: the engine's sidecar (:func:`acmix_deploy.manifest.read_engine_sidecar`).
        trt_version: the running ``tensorrt.__version__``.
        gpu_name: the running GPU's name.
        compute_capability: the running GPU's compute capability, ``"major.minor"``.

    Raises:
        RunnerError: the engine may not run here; the message quotes the rule and says what to rebuild.
    """
    portability = Portability.of_builder(sidecar.builder)
    problems = [
        p
        for p in (
            version_problem(sidecar.tensorrt_version, trt_version, portability),
            hardware_problem(sidecar, gpu_name, compute_capability, portability.hardware),
        )
        if p
    ]
    if problems:
        raise RunnerError(
            "this engine was built for " + "; ".join(problems) + ": rebuild it here with "
            "`acmix-deploy build MODEL.onnx` (--version-compatible / --hardware-compatibility make engines "
            "that move within NVIDIA's rules)"
        )
    return portability


__all__ = [
    "CROSS_MAJOR",
    "HARDWARE_LEVELS",
    "HARDWARE_LEVEL_MEMBERS",
    "Portability",
    "check_engine_compatibility",
    "hardware_problem",
    "version_problem",
]
