"""The Pareto front of a study: rows, test-split re-assessment, export, plots (static and
the interactive pareto.html), hypervolume and its history, and picking one member by a
rule (`pick_member`).

Rows are plain data (`trial_row`, `front_trials`); the re-assessment scores each member
on the test split under the stronger final attack, checks it for gradient masking and
re-times it, once, stored in the study; the export writes the layout of DESIGN.md.
"""

from typing import TYPE_CHECKING

from search.core._lazy import lazy_exports

if TYPE_CHECKING:
    from search.front._assess import (
        assess_front,
        assess_member,
        fingerprint,
        score_on_test,
    )
    from search.front._export import (
        ALLOWED,
        MEMBER_FILES,
        MEMBER_FOLDER,
        SHIPPED_FILES,
        TABLE_FILES,
        artifact_folder,
        check_export_dir,
        export_front,
        is_export,
    )
    from search.front._history import (
        MARGIN,
        HistoryPoint,
        front_hypervolume,
        hypervolume_history,
    )
    from search.front._hypervolume import (
        Point,
        hypervolume,
        to_minimisation,
    )
    from search.front._page import front_data, front_page, write_front_page
    from search.front._parity import agreement, int8_parity
    from search.front._pick import (
        DIRECTIONS,
        GRAMMAR,
        KNEE,
        TEST_METRICS,
        TEST_PREFIXES,
        Constraint,
        Rule,
        allowed_metrics,
        parse_rule,
        pick_member,
        pick_row,
    )
    from search.front._plot import plot_front, plot_hypervolume_history, plot_latency_vs_flops
    from search.front._rows import (
        CONSTRAINTS_KEY,
        TABLE_COLUMNS,
        UNFINISHED_REASON,
        assessed_row,
        format_table,
        frame_json,
        front_frame,
        front_trials,
        latency_ties,
        mark_latency_ties,
        report_columns,
        study_objectives,
        summarize_params,
        trial_row,
        trials_frame,
    )

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
