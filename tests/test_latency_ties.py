"""Front members that differ only by less latency than can be resolved are flagged.

Pure rows first (the rule itself), then `--pick` with `latency_resolved`, then the config
fields that feed it and the device agent (bad input is one line naming the field).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from search.config import parse_config
from search.core import BadInput
from search.front import latency_ties, parse_rule, pick_row

OBJECTIVES = {"robust_accuracy": "maximize", "latency_ms": "minimize", "size_bytes": "minimize"}


def rows() -> list[dict[str, Any]]:
    return [
        # 1 is faster than 2 by 5%: within a 10% tolerance 2 is as fast and more robust
        {"trial": 1, "robust_accuracy": 0.80, "latency_ms": 0.100, "size_bytes": 5000},
        {"trial": 2, "robust_accuracy": 0.85, "latency_ms": 0.105, "size_bytes": 5000},
        # 3 is 40% faster than 2: a real trade-off
        {"trial": 3, "robust_accuracy": 0.60, "latency_ms": 0.060, "size_bytes": 5000},
        # 4 is as fast as 2 and more robust, but larger: a trade-off on size
        {"trial": 4, "robust_accuracy": 0.90, "latency_ms": 0.104, "size_bytes": 9000},
    ]


def test_a_member_ahead_only_by_unresolvable_latency_is_flagged() -> None:
    marked = {r["trial"]: r for r in latency_ties(rows(), OBJECTIVES, tolerance=0.1)}
    assert marked[1]["latency_resolved"] == 0 and marked[1]["latency_ties"] == "2"
    for number in (2, 3, 4):
        assert marked[number]["latency_resolved"] == 1, number
        assert marked[number]["latency_ties"] == ""


def test_tolerance_zero_flags_nothing_and_a_wide_one_more() -> None:
    assert all(r["latency_resolved"] == 1 for r in latency_ties(rows(), OBJECTIVES, 0.0))
    wide = {r["trial"]: r for r in latency_ties(rows(), OBJECTIVES, 0.5)}
    # at 50%, 0.06 ms and 0.105 ms are "as fast": 3 is no longer a trade-off
    assert wide[3]["latency_resolved"] == 0 and wide[3]["latency_ties"] == "1/2"
    assert wide[1]["latency_ties"] == "2"


def test_without_a_latency_objective_rows_are_left_alone() -> None:
    plain = latency_ties(rows(), {"robust_accuracy": "maximize", "size_bytes": "minimize"}, 0.1)
    assert all("latency_resolved" not in r for r in plain)


def test_pick_rules_can_keep_resolved_members_only() -> None:
    marked = latency_ties(rows(), OBJECTIVES, tolerance=0.1)
    allowed = [*OBJECTIVES, "latency_resolved"]
    fastest = pick_row(marked, parse_rule("minimize latency_ms", allowed), OBJECTIVES)
    assert fastest["trial"] == 3
    small = "size_bytes <= 6000 and latency_ms >= 0.09; minimize latency_ms"
    assert pick_row(marked, parse_rule(small, allowed), OBJECTIVES)["trial"] == 1
    resolved = parse_rule("latency_resolved >= 1 and " + small, allowed)
    assert pick_row(marked, resolved, OBJECTIVES)["trial"] == 2  # 1 is 2 within tolerance


@pytest.mark.parametrize(
    ("latency", "says"),
    [
        ({"tolerance": 1.5}, "'latency.tolerance' must be in [0, 1)"),
        ({"tolerance": math.nan}, "latency.tolerance"),
        ({"device": "ftp://pi:8765"}, "'latency.device' must be an agent's URL"),
        ({"device": "http://user:secret@pi:8765"}, "must not hold credentials"),
        ({"device": "http://pi:8765/?token=x"}, "must not hold credentials"),
        ({"device": "http://pi:99999"}, "'latency.device' has a bad port"),
        ({"device": "http://pi:8765", "runtime": "torch"}, "needs latency.runtime: onnxruntime"),
        ({"device": "http://pi:8765", "token_env": "A-B"}, "'latency.token_env' must name"),
    ],
)
def test_bad_latency_fields_are_one_line(latency: dict[str, Any], says: str) -> None:
    with pytest.raises(BadInput) as caught:
        parse_config({"latency": latency})
    message = str(caught.value)
    assert says in message and "\n" not in message


def test_a_device_url_is_taken_and_threads_are_the_devices() -> None:
    config = parse_config({"latency": {"device": "http://192.168.1.20:8765", "threads": 512}})
    assert config.latency.device == "http://192.168.1.20:8765"
    assert config.latency.token_env == "AER_SEARCH_AGENT_TOKEN"


def test_the_service_refuses_a_submitted_device_agent() -> None:
    """The server would send its agent token to whatever URL a submitted config names."""
    from search.service._intake import check_trusted

    raw = {"latency": {"device": "http://10.0.0.9:8765"}}
    with pytest.raises(BadInput, match="'latency.device': a submitted config may not"):
        check_trusted(raw, allow_plugins=False, storage="sqlite:///s.db")
    check_trusted(raw, allow_plugins=True, storage="sqlite:///s.db")  # the operator trusts it
