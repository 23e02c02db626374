"""The Python API: run_search and load_study_result on a real tiny study."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from torch import nn

from search import load_model, load_study_result, run_search
from search.api import FrontMember, StudyResult
from search.core import BadInput
from search.robust import clean_accuracy
from search.study import config_from_dict


@pytest.fixture(scope="module")
def api_study(tmp_path_factory: pytest.TempPathFactory, _base_model_cache) -> dict[str, Any]:
    """One tiny study run through run_search, shared by this module's tests."""
    from conftest import TINY

    root = tmp_path_factory.mktemp("api")
    config = copy.deepcopy(TINY)
    config.update(study="api", trials=2)
    config["evaluation"].update(final_steps=5, final_restarts=1)  # a cheap export
    url = f"sqlite:///{root / 'api.db'}"
    result = run_search(config, storage=url)
    return {"result": result, "url": url, "root": root, "config": config}


def test_result_behaves_like_a_list_of_front_members(api_study, tiny_setup) -> None:
    """Guards: len, indexing, slicing and iteration give the front, ordered by trial;
    each member's model reproduces its recorded validation accuracy."""
    result = api_study["result"]
    assert isinstance(result, StudyResult)
    assert 1 <= len(result) <= 2
    members = list(result)
    assert members == result[:] and result[0] is members[0]
    assert [m.number for m in members] == sorted(m.number for m in members)
    front = {t.number for t in result.study.best_trials}
    assert {m.number for m in members} == front
    member = result[0]
    assert isinstance(member, FrontMember)
    assert set(member.metrics) >= {"robust_accuracy", "clean_accuracy", "latency_ms", "size_bytes"}
    assert "epsilon" in member.params and "epochs" in member.params
    model = member.model()
    assert isinstance(model, nn.Module) and not model.training
    clean = clean_accuracy(model, tiny_setup.val_loader, tiny_setup.device)
    assert clean == pytest.approx(member.metrics["clean_accuracy"], abs=1e-9)


def test_to_dataframe_has_one_row_per_member(api_study) -> None:
    """Guards: the table view matches the list view."""
    result = api_study["result"]
    frame = result.to_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert frame["trial"].tolist() == [m.number for m in result]
    assert frame["robust_accuracy"].tolist() == [m.metrics["robust_accuracy"] for m in result]
    assert len(result.trials_dataframe()) == 2


def test_load_study_result_reads_the_same_front_and_resuming_runs_nothing(api_study) -> None:
    """Guards: a stored study loads back equal; run_search again resumes (budget spent)."""
    loaded = load_study_result("api", api_study["url"])
    assert [(m.number, m.metrics) for m in loaded] == [
        (m.number, m.metrics) for m in api_study["result"]
    ]
    again = run_search(config_from_dict(api_study["config"]), storage=api_study["url"])
    assert len(again.study.trials) == 2
    only = load_study_result(storage=api_study["url"])  # the only study: no name needed
    assert only.study.study_name == "api"


def test_export_writes_the_layout_and_refuses_to_overwrite(api_study) -> None:
    """Guards: export(DIR) writes every member's files; a second export needs force."""
    result = api_study["result"]
    out = api_study["root"] / "export"
    table = result.export(out)
    assert table["trial"].tolist() == [m.number for m in result]
    for member in result:
        folder = out / f"trial-{member.number}"
        for name in ("model.safetensors", "model.onnx", "recipe.yaml", "metrics.json"):
            assert (folder / name).is_file()
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["validation"] == member.metrics
        assert isinstance(load_model(folder), nn.Module)
    with pytest.raises(BadInput, match="force"):
        result.export(out)
    assert len(result.export(out, force=True)) == len(result)


def test_bad_input_raises_before_anything_is_written(tmp_path: Path, tiny_config) -> None:
    """Guards: a bad config, a bad type or a missing storage is BadInput; no file appears."""
    url = f"sqlite:///{tmp_path / 'never.db'}"
    tiny_config["objectives"] = ["latancy_ms"]
    with pytest.raises(BadInput, match="did you mean 'latency_ms'"):
        run_search(tiny_config, storage=url)
    with pytest.raises(BadInput, match="StudyConfig, a mapping or a YAML path"):
        run_search(42, storage=url)  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="no such file"):
        load_study_result("api", url)
    assert list(tmp_path.iterdir()) == []
