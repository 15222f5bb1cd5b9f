"""The shipped zoo table is what counting the registered variants gives today."""

from __future__ import annotations

import subprocess
import sys

import pytest

from acmix_deploy.models import list_models
from acmix_deploy.models.complexity import describe, zoo_table


@pytest.mark.slow
def test_zoo_table_matches_a_fresh_count():
    assert zoo_table() == [describe(name) for name in list_models()]


def test_models_command_needs_no_torch():
    code = (
        "import sys\n"
        "from acmix_deploy.cli import main\n"
        "sys.argv = ['acmix-deploy', 'models', '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.stderr.strip().splitlines()[-1] == "False", proc.stderr
    assert "acmix_swin_small" in proc.stdout
