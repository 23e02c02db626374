"""The column names of a front member's test-split re-assessment.

They live here, torch-free, because three readers share them: the CLI's table (which
must start without importing torch), pick rules (which may name the numeric ones) and
the page. `search.front._rows.report_columns` writes exactly these columns.
"""

from __future__ import annotations

# numeric: a pick rule may constrain or optimise them
TEST_METRICS = (
    "test_clean_accuracy",
    "test_robust_accuracy",
    "test_robust_accuracy_final",
    "retimed_ms",
    "retimed_min_ms",
    "retimed_max_ms",
)
# every column of the re-assessment, in the order the tables show them
ASSESSED_COLUMNS = (*TEST_METRICS, "latency_form", "sanity")
