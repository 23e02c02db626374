"""The latency model: calibrated on real onnxruntime and torch timings of pruned models,
then the same prediction every time, monotone in channels within a kernel class, stored
with the study and reloaded, and `latency.mode` checked and fixed per study."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from conftest import TINY, run_cli
from torch import nn

from search.compress import prune, quantize_weights, weighted_layers
from search.config import LatencyConfig
from search.front import front_frame
from search.latency_model import (
    FLOAT,
    INT8,
    LatencyModel,
    calibrate,
    calibration_sparsities,
    study_sparsities,
)
from search.study import (
    LATENCY_MODEL,
    NOTES,
    artifact_store,
    config_from_dict,
    setup_from_study,
    trial_model,
    with_stored_defaults,
)

FAST = LatencyConfig(warmup=2, repeats=5)
CPU = torch.device("cpu")


def compressed(base: nn.Module, shape: tuple[int, ...], sparsity: float, bits: int) -> nn.Module:
    """`base` pruned uniformly at `sparsity`, every layer at `bits` (32: float)."""
    model = copy.deepcopy(base).eval()
    layers = list(weighted_layers(model))
    prune(model, dict.fromkeys(layers[:-1], sparsity), torch.rand(1, *shape))
    return quantize_weights(model, dict.fromkeys(layers, bits))


@pytest.fixture(scope="module")
def fitted(tiny_setup: Any) -> dict[str, LatencyModel]:
    """A latency model per runtime, calibrated on 8 models of the tiny study's base."""
    base, shape = tiny_setup.base_model, tiny_setup.input_shape
    sparsities = study_sparsities(base, 0.0, 0.75, 0.05, seed=0, count=6)
    return {
        runtime: calibrate(base, shape, dataclasses.replace(FAST, runtime=runtime), CPU, sparsities)
        for runtime in ("onnxruntime", "torch")
    }


def test_calibration_times_the_same_models_every_time() -> None:
    layers = ["conv1", "conv2", "fc1"]
    first = calibration_sparsities(layers, 0.0, 0.75, 0.05, count=5, seed=3)
    assert first == calibration_sparsities(layers, 0.0, 0.75, 0.05, count=5, seed=3)
    assert first[:2] == [dict.fromkeys(layers, 0.0), dict.fromkeys(layers, 0.75)]  # extremes
    assert len(first) == 7
    values = {v for plan in first for v in plan.values()}
    assert all(0.0 <= v <= 0.75 and round(v / 0.05, 6).is_integer() for v in values)
    assert first != calibration_sparsities(layers, 0.0, 0.75, 0.05, count=5, seed=4)


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_the_same_plan_predicts_the_same_number(
    fitted: dict[str, LatencyModel], tiny_setup: Any, runtime: str
) -> None:
    base, shape = tiny_setup.base_model, tiny_setup.input_shape
    model = fitted[runtime]
    int8 = model.predict(compressed(base, shape, 0.3, 4))
    assert int8 == model.predict(compressed(base, shape, 0.3, 4))  # rebuilt from the plan
    reloaded = LatencyModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert reloaded.predict(compressed(base, shape, 0.3, 4)) == int8
    assert int8[0] > 0 and int8[1] in (INT8, FLOAT)
    if runtime == "onnxruntime":  # the int8 file ships whenever every layer has <= 8 bits
        assert int8[1] == INT8
        assert model.predict(compressed(base, shape, 0.3, 32))[1] == FLOAT
    assert set(model.forms) == {FLOAT, INT8}
    assert all(cost >= 0 for form in model.forms.values() for cost in form.costs.values())
    assert model.key["runtime"] == runtime and model.key["batch_size"] == 1


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
@pytest.mark.parametrize("bits", [8, 32])
def test_fewer_channels_are_never_predicted_slower(
    fitted: dict[str, LatencyModel], tiny_setup: Any, runtime: str, bits: int
) -> None:
    """Uniform sparsities that keep every width a multiple of 4 (one kernel class per
    layer in onnxruntime, see search.latency_model._features)."""
    base, shape = tiny_setup.base_model, tiny_setup.input_shape
    predicted = [
        fitted[runtime].predict(compressed(base, shape, sparsity, bits))[0]
        for sparsity in (0.0, 0.25, 0.5, 0.75)
    ]
    assert predicted == sorted(predicted, reverse=True)
    assert predicted[0] > predicted[-1]  # the model sees the work, not only a fixed cost


def test_an_older_study_reads_as_measured() -> None:
    stored = {"latency": {"runtime": "onnxruntime", "repeats": 50}}
    assert with_stored_defaults(stored)["latency"]["mode"] == "measured"
    assert with_stored_defaults({"latency": {"mode": "predicted"}})["latency"]["mode"] == (
        "predicted"
    )


def _run(root: Path, config: dict[str, Any], *extra: str) -> tuple[int, str, str, str]:
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    url = f"sqlite:///{root / 'study.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("AER_SEARCH_STORAGE", raising=False)
        rc, out, err = run_cli(["run", str(path), "--storage", url, *extra])
    return rc, out, err, url


def test_a_predicted_study_stores_its_model_and_every_trial_is_its_prediction(
    tmp_path: Path,
) -> None:
    config = copy.deepcopy(TINY)
    config["latency"]["mode"] = "predicted"
    config["trials"] = 2
    rc, _, err, url = _run(tmp_path, config)
    assert rc == 0, err
    study = optuna.load_study(study_name="tiny", storage=url)
    model = LatencyModel.from_dict(study.user_attrs[LATENCY_MODEL])
    assert model.key["runtime"] == "onnxruntime" and model.seconds > 0
    artifacts = artifact_store(url, None)
    for trial in study.get_trials(states=[optuna.trial.TrialState.COMPLETE]):
        loaded, _ = trial_model(trial, artifacts)  # the stored weights: what was scored
        predicted, form = model.predict(loaded)
        assert trial.user_attrs["metrics"]["latency_ms"] == predicted
        assert trial.user_attrs[NOTES]["latency"] == {"predicted_ms": predicted, "form": form}
    rows = front_frame(study)
    assert (rows["latency_ms_predicted"] == rows["latency_ms"]).all()

    # a worker joining the study predicts with the stored model, not one of its own
    worker = setup_from_study(study, config_from_dict(config), artifacts)
    assert worker.latency_model is not None
    assert worker.latency_model.to_dict() == study.user_attrs[LATENCY_MODEL]

    # resuming under the other mode would mix two latency scales in one study: refused
    config["latency"]["mode"] = "measured"
    rc, out, err, _ = _run(tmp_path, config, "--trials", "3")
    assert rc == 2 and out == ""
    assert "config field 'latency' differs" in err and '"mode": "predicted"' in err
    assert len(optuna.load_study(study_name="tiny", storage=url).trials) == 2


def test_bad_latency_mode_is_refused_naming_the_field(tmp_path: Path) -> None:
    config = copy.deepcopy(TINY)
    config["latency"]["mode"] = "predict"
    rc, out, err, _ = _run(tmp_path, config)
    assert rc == 2 and out == ""
    assert "latency.mode" in err and "predicted, measured" in err and "'predict'" in err
    assert not (tmp_path / "study.db").exists()
