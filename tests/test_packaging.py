"""Facts about the installed package that the README relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from search.config import PRESETS_DIR, StudyConfig
from search.study import load_config


def test_digits_preset_spells_out_the_defaults() -> None:
    """`search run` with no arguments and `--preset digits` must be the same study."""
    assert (PRESETS_DIR / "digits.yaml").is_file()
    assert load_config(preset="digits").to_dict() == StudyConfig().validate().to_dict()


def test_torchattacks_does_not_import_requests() -> None:
    """The README's `--no-deps torchattacks` advice holds only while this is true."""
    code = "import sys, torchattacks; print('requests' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_console_script_is_installed() -> None:
    """The `search` console script exists beside the interpreter and lists the commands."""
    script = Path(sys.executable).parent / "search"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    for command in ("run", "pareto", "trials", "objectives", "spaces"):
        assert command in out.stdout
