"""Portable engines: NVIDIA's version and hardware rules as the runner applies them, and what the build records."""

from __future__ import annotations

import pytest

from acmix_deploy.runtimes.base import RunnerError
from acmix_deploy.runtimes.tensorrt import check_engine_compatibility
from acmix_deploy.runtimes.tensorrt_compat import HARDWARE_LEVEL_MEMBERS, Portability, version_problem
from tests.exporters.tensorrt.api_uses import enum_values, releases
from tests.exporters.test_tensorrt_build import _sidecar

VC = Portability(version_compatible=True)
LEAN_EXCLUDED = Portability(version_compatible=True, exclude_lean_runtime=True)


@pytest.mark.parametrize(
    ("built", "running", "portability", "problem"),
    [
        ("10.3.0.26", "10.3.0.26", Portability(), None),
        ("10.3.0.26", "10.16.1.11", Portability(), "not built version-compatible"),
        ("10.3.0.26", "10.16.1.11", VC, None),  # later release, same major
        ("10.16.1.11", "10.3.0.26", VC, "running the older 10.3.0.26"),
        ("10.16.1.11", "11.4.0.106", VC, None),  # 10 -> 11 is one of the two cross-major pairs
        ("11.4.0.106", "10.16.1.11", VC, "running the older"),
        ("10.16.1.11", "12.0.0.1", VC, "across majors only 8 -> 10 and 10 -> 11"),
        ("11.0.0.1", "11.4.0.106", VC, None),
        ("10.3.0.26", "10.16.1.11", LEAN_EXCLUDED, "excludes the lean runtime"),
        ("10.3.0.26", "10.3.0.26", LEAN_EXCLUDED, None),
    ],
)
def test_version_rules(built, running, portability, problem):
    found = version_problem(built, running, portability)
    assert found is None if problem is None else problem in found


H100 = ("NVIDIA H100 80GB HBM3", "9.0")  # what _sidecar() was built on


@pytest.mark.parametrize(
    ("level", "gpu", "cc", "refused"),
    [
        ("none", "NVIDIA H100 80GB HBM3", "9.0", None),
        ("none", "NVIDIA H200", "9.0", "built without hardware compatibility"),
        ("same-compute-capability", "NVIDIA H200", "9.0", None),
        ("same-compute-capability", "NVIDIA A100-SXM4-80GB", "8.0", "same compute capability"),
        ("ampere-plus", "NVIDIA A100-SXM4-80GB", "8.0", None),
        ("ampere-plus", "NVIDIA L4", "8.9", None),
        ("ampere-plus", "Tesla T4", "7.5", "Ampere and newer GPUs only"),
    ],
)
def test_hardware_rules_in_the_runners_check(tmp_path, level, gpu, cc, refused):
    sidecar = _sidecar(tmp_path)
    sidecar.builder.update(hardware_compatibility=level)
    if refused is None:
        assert check_engine_compatibility(sidecar, "10.9.0.34", gpu, cc).hardware == level
    else:
        with pytest.raises(RunnerError, match=refused) as info:
            check_engine_compatibility(sidecar, "10.9.0.34", gpu, cc)
        message = str(info.value)
        assert "\n" not in message and "rebuild it here" in message and "--hardware-compatibility" in message


def test_a_version_compatible_engine_is_accepted_by_a_later_release_and_says_so(tmp_path):
    sidecar = _sidecar(tmp_path)  # built by 10.9.0.34
    with pytest.raises(RunnerError, match="not built version-compatible"):
        check_engine_compatibility(sidecar, "10.16.1.11", *H100)
    sidecar.builder.update(version_compatible=True)
    assert check_engine_compatibility(sidecar, "10.16.1.11", *H100).version_compatible
    with pytest.raises(RunnerError, match="NVIDIA's rule"):
        check_engine_compatibility(sidecar, "10.8.0.43", *H100)


def test_bad_portability_records_are_refused(tmp_path):
    sidecar = _sidecar(tmp_path)
    sidecar.builder.update(hardware_compatibility="everything")
    with pytest.raises(RunnerError, match="hardware compatibility must be one of"):
        check_engine_compatibility(sidecar, "10.9.0.34", *H100)


def test_the_flags_and_levels_we_set_exist_in_the_real_enums():
    for release in releases():
        flags = enum_values(release, "BuilderFlag")
        assert {"VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"} <= set(flags)
        levels = enum_values(release, "HardwareCompatibilityLevel")
        assert {"NONE", "AMPERE_PLUS"} <= set(levels)
    # SAME_COMPUTE_CAPABILITY came after 10.0: apply_portability feature-detects it (BuildError there).
    assert "SAME_COMPUTE_CAPABILITY" not in enum_values(releases()[0], "HardwareCompatibilityLevel")
    assert "SAME_COMPUTE_CAPABILITY" in enum_values(releases()[-1], "HardwareCompatibilityLevel")
    assert set(HARDWARE_LEVEL_MEMBERS.values()) == set(enum_values(releases()[-1], "HardwareCompatibilityLevel"))
