"""Which config changes a resumed study accepts (search.study.check_compatible): fields
that do not change how trials are scored, and nothing else."""

from __future__ import annotations

import pytest

from search.core import BadInput
from search.study import check_compatible, config_from_dict


def stored_and_given(tiny_config, section: str, key: str, value) -> tuple[dict, dict]:
    stored = config_from_dict(tiny_config).to_dict()
    changed = {**tiny_config, section: {**tiny_config.get(section, {}), key: value}}
    return stored, config_from_dict(changed).to_dict()


def test_a_new_test_subset_resumes_the_study(tiny_config) -> None:
    """The embedded default's test subset changed size: its users' studies still resume
    (the re-assessment reads the study's own stored subset)."""
    stored, given = stored_and_given(tiny_config, "data", "test_samples", 123)
    assert stored["data"] != given["data"]
    check_compatible(stored, given, "tiny")


@pytest.mark.parametrize(("section", "key", "value"), [("data", "val_samples", 77)])
def test_a_change_to_how_trials_are_scored_is_refused(tiny_config, section, key, value) -> None:
    stored, given = stored_and_given(tiny_config, section, key, value)
    with pytest.raises(BadInput, match=f"config field '{section}' differs"):
        check_compatible(stored, given, "tiny")
