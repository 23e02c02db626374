"""Facts about the installed package that the README relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from search.config import PRESETS_DIR, StudyConfig
from search.study import load_config


def test_digits_preset_spells_out_the_defaults() -> None:
    """`search run` with no arguments runs `--preset digits`, and that preset spells out
    every default except the test subset it sizes for a 2-core machine (200 of 360)."""
    assert (PRESETS_DIR / "digits.yaml").is_file()
    preset = load_config(preset="digits").to_dict()
    assert load_config().to_dict() == preset
    defaults = StudyConfig().validate().to_dict()
    assert (preset["data"].pop("test_samples"), defaults["data"].pop("test_samples")) == (200, None)
    assert preset == defaults


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
