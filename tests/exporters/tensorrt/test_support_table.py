"""The support table is data: the shipped JSON loads into the shape the checks read, bad data fails clearly."""

from __future__ import annotations

import fnmatch
import json
import sys
from importlib import resources

import pytest

from acmix_deploy.exporters.tensorrt.support_table import (
    DATA_FILE,
    SUPPORT_TABLE,
    SupportTableError,
    parse_support_table,
)
from tests.exporters.test_tensorrt_build import REPO

PACKAGE = "acmix_deploy.exporters.tensorrt"


def _shipped() -> dict:
    return json.loads(resources.files(PACKAGE).joinpath(DATA_FILE).read_text(encoding="utf-8"))


def test_shipped_table_has_int_majors_and_release_tuples():
    assert set(SUPPORT_TABLE["majors"]) == {10, 11}
    assert SUPPORT_TABLE["added_in"]["DFT"] == (11, 2)
    assert SUPPORT_TABLE["constant_inputs"]["Pad"] == {"inputs": [1, 2, 3], "severity": "warning"}
    ten, eleven = SUPPORT_TABLE["majors"][10], SUPPORT_TABLE["majors"][11]
    assert "DFT" in ten["unsupported"] and "DFT" in eleven["supported"] and "DFT" not in eleven["unsupported"]
    assert eleven["strongly_typed_only"] and not ten["strongly_typed_only"]


def test_every_major_lists_each_operator_once():
    for major, entry in SUPPORT_TABLE["majors"].items():
        both = set(entry["supported"]) & set(entry["unsupported"])
        assert not both, (major, both)
        assert len(set(entry["supported"])) == len(entry["supported"]), major


def test_rules_name_known_severities_and_supported_ops():
    for op, rule in SUPPORT_TABLE["constant_inputs"].items():
        assert rule["severity"] in ("blocker", "warning"), op
        assert op in SUPPORT_TABLE["majors"][10]["supported"], op


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda t: t["majors"]["10"].pop("max_opset"), "major 10 lacks max_opset"),
        (lambda t: t.pop("constant_inputs"), "malformed .*constant_inputs"),
        (lambda t: t["added_in"].update(Swish=[11]), "malformed"),
        (lambda t: t["majors"].update(ten=t["majors"]["10"]), "malformed .*ten"),
    ],
    ids=["missing-major-key", "missing-section", "short-release", "non-integer-major"],
)
def test_malformed_table_is_one_line_error(mutate, match):
    data = _shipped()
    mutate(data)
    with pytest.raises(SupportTableError, match=match) as info:
        parse_support_table(json.dumps(data))
    assert "\n" not in str(info.value)


def test_table_that_is_not_json():
    with pytest.raises(SupportTableError, match="not valid JSON"):
        parse_support_table('{"majors": ')


def test_pyproject_ships_the_table_as_package_data():
    """An installed wheel holds only what package-data names: the table must match a pattern there."""
    tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert PACKAGE in setuptools["packages"]
    patterns = setuptools["package-data"].get(PACKAGE, [])
    assert any(fnmatch.fnmatch(DATA_FILE, p) for p in patterns), patterns
