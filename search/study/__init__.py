"""A study: the trial pipeline, its setup, and everything a study stores.

`run_trial` reads top to bottom (prune -> quantize -> fine-tune -> score) and knows no
search engine; `evaluate` is the seam every backend calls to run one Optuna trial and
record it. `_stored` owns every key a study stores and states its guarantees. Opening a
study checks compatibility; the budget is the study's, shared by all its processes;
warm-start anchors and the baselines' points are queued by the creator only.
"""

from typing import TYPE_CHECKING

from search.core._lazy import lazy_exports

if TYPE_CHECKING:
    from search.study._base_model import (
        base_recipe,
        base_training_cpu_seconds,
        load_base,
        load_checkpoint,
        obtain_base_model,
        recipe_hash,
    )
    from search.study._baselines import (
        BASELINES,
        PAPER_BITS,
        PAPER_SPARSITY,
        TRAINING_BASELINES,
        baseline_config,
        paper_grid_points,
    )
    from search.study._bounded_sampler import BoundedHistorySampler, bounded_history
    from search.study._budget import (
        BUDGETED,
        FINISHED,
        HOST_ENV,
        budget_count,
        claim_slot,
        fail_abandoned_trials,
        fail_orphaned_trials,
        finished_count,
        this_host,
    )
    from search.study._evaluate import (
        apply_constraints,
        base_sanity,
        evaluate,
        prepare_study,
        record,
        setup_from_study,
        suggest,
        weights_metadata,
    )
    from search.study._fidelity import (
        inherit_rungs,
        load_checkpoint_state,
        record_decision,
        record_rung,
        save_checkpoint,
    )
    from search.study._heartbeat import (
        HEARTBEAT,
        HEARTBEAT_ENV,
        HEARTBEAT_SECONDS,
        Beat,
        heartbeat_seconds,
        stale_trials,
    )
    from search.study._latency import (
        calibrate_setup,
        ensure_latency_model,
        predicts_latency,
        stored_latency_model,
    )
    from search.study._open import (
        RESUMABLE_FIELDS,
        check_compatible,
        created_here,
        open_stored_study,
        open_study,
    )
    from search.study._progress import Progress
    from search.study._promotion import (
        Decision,
        claim_continuation,
        decide,
        enqueue_promotion,
        find_promotion,
        objective_point,
        replay_decisions,
    )
    from search.study._proxy import GRPC, check_listen, is_proxy_url, serve_proxy
    from search.study._reading import fast_journal_replay, rdb_storage, read_trials
    from search.study._resolve import (
        config_from_dict,
        directions,
        load_config,
        metric_names,
        resolve,
    )
    from search.study._runner import TRIAL_RUNNER_ENV, trial_runner
    from search.study._samplers import (
        make_sampler,
        process_nonce,
        sampler_seed,
    )
    from search.study._setup import StudySetup
    from search.study._storage import (
        ALLOWED,
        ARTIFACTS_ENV,
        CREATE_RETRIES,
        DEFAULT_STORAGE,
        JOURNAL,
        SQLITE,
        SQLITE_HEADER,
        STORAGE_ENV,
        absolute_url,
        artifact_dir,
        artifact_store,
        check_storage_url,
        fetch_artifact,
        open_storage,
        storage_file,
        storage_url,
    )
    from search.study._stored import (
        BASE_CPU_SECONDS,
        BASE_SANITY,
        BASE_WEIGHTS,
        CONFIG,
        CONTINUES,
        FAIL_REASON,
        FEASIBLE,
        FINAL_PREFIX,
        INTERRUPTED,
        LATENCY_MODEL,
        METRICS,
        NOTES,
        PLAN,
        RAY,
        RAY_EXPERIMENT,
        RUNGS,
        SAMPLER_SEED,
        SECONDS,
        SURPLUS,
        WEIGHTS_ARTIFACT,
        WIDTHS,
        WORKER,
        fail_trial,
        final_key,
        store_base,
        stored_config,
        trial_model,
        upload_weights,
        with_stored_defaults,
    )
    from search.study._trial import (
        Resume,
        RungCallback,
        TrialOutcome,
        compress,
        run_trial,
        score,
    )
    from search.study._trials_view import TrialsView, add_to_front, trials_view
    from search.study._warm_start import ANCHORS, anchor_points

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
