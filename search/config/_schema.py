"""The study configuration: one typed, validated object built from YAML, a dict or defaults.

Everything that decides what a trial's numbers mean (data split, threat model, latency
settings, search space) lives here, is stored with the study, and is checked before
anything is written, so bad input fails fast with one line naming the field.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.core import BadInput, check_device_name, close_matches
from search.timing import TOKEN_ENV

ALLOWED_BITS = (2, 3, 4, 5, 6, 7, 8, 16, 32)
DEFAULT_BITS = (2, 3, 4, 5, 6, 7, 8, 32)  # 16 bits exists for the paper's grid
STRATEGIES = ("standard", "adversarial", "blind", "trades")
# the space's default: TRADES is chosen explicitly (`space.strategies`), so the default
# search (and every stored default study) keeps its meaning
DEFAULT_STRATEGIES = ("standard", "adversarial", "blind")
SAMPLERS = ("tpe", "gp", "nsga2", "random")
RUNTIMES = ("torch", "onnxruntime")  # what times the latency objective (LatencyConfig)
LATENCY_MODES = ("predicted", "measured")  # a trial's latency: the study's model, or a timing
CONSTRAINT_OPERATORS = ("<=", ">=")
PRESETS_DIR = Path(__file__).parent / "presets"


@dataclass
class DataConfig:
    """Which data set, where it lives, and how it is split."""

    # digits | mnist | fashion-mnist | cifar10, or "pkg.module:function" (see search.zoo._data)
    name: str = "digits"
    root: str | None = None  # local root for torchvision data sets (see search.zoo._data)
    download: bool = False  # let torchvision download into the cache (needs internet)
    val_fraction: float = 0.2
    test_fraction: float = 0.2  # digits only; torchvision sets have their own test split
    batch_size: int = 64
    val_samples: int | None = None  # score trials on a fixed seeded subset of validation
    test_samples: int | None = None  # re-score the front on a fixed seeded test subset

    def validate(self) -> None:
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            if not 0 < value < 0.5:
                raise BadInput(f"config field 'data.{key}' must be in (0, 0.5), got {value}")
        _positive("data.batch_size", self.batch_size)
        for key in ("val_samples", "test_samples"):
            if getattr(self, key) is not None:
                _positive(f"data.{key}", getattr(self, key))


@dataclass
class ModelConfig:
    """The base model: a zoo name or `pkg.module:factory`, trained once or loaded."""

    name: str = "digits-cnn"
    checkpoint: str | None = None  # a state dict saved with torch.save
    base_epochs: int = 20
    base_lr: float = 0.003
    base_samples_per_epoch: int | None = None  # random training images per base epoch

    def validate(self) -> None:
        _positive("model.base_epochs", self.base_epochs, allow_zero=True)
        _positive("model.base_lr", self.base_lr)
        if self.base_samples_per_epoch is not None:
            _positive("model.base_samples_per_epoch", self.base_samples_per_epoch)
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise BadInput(f"config field 'model.checkpoint': no such file {self.checkpoint!r}")


@dataclass
class SpaceConfig:
    """Ranges of the searched knobs and how finely they are split over layers."""

    granularity: str = "layer"  # layer | group | global
    groups: dict[str, str] = field(default_factory=dict)  # group name -> fnmatch pattern
    sparsity: list[float] = field(default_factory=lambda: [0.0, 0.75])
    sparsity_step: float = 0.05
    bits: list[int] = field(default_factory=lambda: list(DEFAULT_BITS))
    epsilon: list[float] = field(default_factory=lambda: [0.0, 0.2])
    epsilon_step: float = 0.02
    epochs: list[int] = field(default_factory=lambda: [0, 3])
    # fine-tuning strategies to choose from: standard (clean), adversarial (PGD/FGSM at the
    # trial's epsilon), blind (BAP's cutoff-scale budget, epsilon as its upper bound) and
    # trades (TRADES, arXiv 1901.08573: clean loss + beta * KL to the worst point)
    strategies: list[str] = field(default_factory=lambda: list(DEFAULT_STRATEGIES))
    # [low, high]: search TRADES' beta in this range (trials of strategy trades); None
    # uses `finetune.trades_beta` for every trial
    trades_beta: list[float] | None = None
    # where a trial starts: the trained base model, or a fresh random init ("scratch",
    # the adversarial-training-from-scratch baseline, trained like the base model)
    init: list[str] = field(default_factory=lambda: ["base"])
    # a user space instead of the built-in one: "pkg.module:function" returning a
    # spaces.Space (see spaces.custom); it gets this section and the model's layer names
    factory: str | None = None

    def validate(self) -> None:
        allowed = ("layer", "group", "global")
        if self.granularity not in allowed:
            raise BadInput(
                f"config field 'space.granularity' must be one of {', '.join(allowed)}, "
                f"got {self.granularity!r}{close_matches(self.granularity, allowed)}"
            )
        if self.granularity == "group" and not self.groups:
            raise BadInput(
                "config field 'space.groups' must name at least one group "
                "(name: layer-name pattern) when granularity is 'group'"
            )
        low, high = _range("space.sparsity", self.sparsity)
        if low < 0 or high >= 1:
            raise BadInput(
                f"config field 'space.sparsity' must lie in [0, 1) (1 would remove every "
                f"channel), got {self.sparsity}"
            )
        _positive("space.sparsity_step", self.sparsity_step)
        if not self.bits:
            raise BadInput(f"config field 'space.bits' must list some of {list(ALLOWED_BITS)}")
        for bits in self.bits:
            if bits not in ALLOWED_BITS:
                raise BadInput(
                    f"config field 'space.bits' allows only {list(ALLOWED_BITS)}, got {bits}"
                )
        low, high = _range("space.epsilon", self.epsilon)
        if low < 0 or high > 1:
            raise BadInput(
                f"config field 'space.epsilon' must lie in [0, 1] (L-inf, pixels in [0, 1]), "
                f"got {self.epsilon}"
            )
        _positive("space.epsilon_step", self.epsilon_step)
        low, high = _range("space.epochs", self.epochs)
        if low < 0:
            raise BadInput(f"config field 'space.epochs' must be >= 0, got {self.epochs}")
        if not self.strategies:
            raise BadInput(f"config field 'space.strategies' must list some of {STRATEGIES}")
        for strategy in self.strategies:
            _choice("space.strategies", strategy, STRATEGIES)
        if self.trades_beta is not None:
            low, high = _range("space.trades_beta", self.trades_beta)
            if low <= 0:
                raise BadInput(
                    f"config field 'space.trades_beta' must lie in (0, inf), got {self.trades_beta}"
                )
        if not self.init:
            raise BadInput("config field 'space.init' must list some of base, scratch")
        for init in self.init:
            _choice("space.init", init, ("base", "scratch"))


@dataclass
class FinetuneConfig:
    """How a trial fine-tunes: the training attack and the optimiser."""

    attack: str = "pgd"  # pgd | fgsm (FGSM with random start, "fast adversarial training")
    steps: int = 3  # PGD steps while fine-tuning; the step size is 2.5 * epsilon / steps
    lr: float = 0.001
    samples_per_epoch: int | None = None  # random training images per fine-tuning epoch
    clean_weight: float = 0.0  # loss = w * clean loss + (1 - w) * adversarial loss
    blind_scale: float = 0.8  # BAP: the cut-off perturbation is scaled by this factor
    trades_beta: float = 6.0  # TRADES: loss = CE(clean) + beta * KL(clean || adversarial)
    # Rice et al. 2020 (robust overfitting): epoch-based adversarial fine-tuning keeps the
    # epoch whose robust accuracy on `keep_best_samples` validation images is best
    keep_best: bool = False
    keep_best_samples: int = 500

    def validate(self) -> None:
        _choice("finetune.attack", self.attack, ("pgd", "fgsm"))
        _positive("finetune.steps", self.steps)
        _positive("finetune.lr", self.lr)
        if self.samples_per_epoch is not None:
            _positive("finetune.samples_per_epoch", self.samples_per_epoch)
        if not 0 <= self.clean_weight <= 1:
            raise BadInput(
                f"config field 'finetune.clean_weight' must be in [0, 1], got {self.clean_weight}"
            )
        if not 0 < self.blind_scale < 1:
            raise BadInput(
                f"config field 'finetune.blind_scale' must be in (0, 1), got {self.blind_scale}"
            )
        _positive("finetune.trades_beta", self.trades_beta)
        _positive("finetune.keep_best_samples", self.keep_best_samples)


@dataclass
class EvaluationConfig:
    """The ONE threat model every trial of a study is scored under (never a trial's own)."""

    attack: str = "pgd"  # what scores every trial during the search
    norm: str = "linf"  # linf | l2
    epsilon: float = 0.1  # in pixels in [0, 1] (L-inf) or the L2 norm of the perturbation
    steps: int = 10
    step_size: float = 0.025
    restarts: int = 1
    # the stronger attack that re-scores the front on the test split (`search pareto`):
    # apgd = APGD-CE + APGD-DLR, autoattack = standard AutoAttack at its published budgets
    # (search.robust._autoattack; slow on a CPU), pgd = PGD with `final_restarts` random restarts
    final_attack: str = "apgd"
    final_steps: int = 50
    final_restarts: int = 2
    # budget of the optional `robust_accuracy_l2` objective (L2 PGD, the steps above,
    # step size 2.5 * l2_epsilon / steps), a second threat model beside the one above
    l2_epsilon: float = 0.5

    def validate(self) -> None:
        _choice("evaluation.attack", self.attack, ("pgd",))
        _choice("evaluation.norm", self.norm, ("linf", "l2"))
        high = 1 if self.norm == "linf" else 100
        if not 0 < self.epsilon <= high:
            raise BadInput(
                f"config field 'evaluation.epsilon' must be in (0, {high}] for norm "
                f"{self.norm} (pixels in [0, 1]), got {self.epsilon}"
            )
        _positive("evaluation.steps", self.steps)
        _positive("evaluation.step_size", self.step_size)
        _positive("evaluation.restarts", self.restarts)
        _choice("evaluation.final_attack", self.final_attack, ("apgd", "autoattack", "pgd"))
        _positive("evaluation.final_steps", self.final_steps)
        _positive("evaluation.final_restarts", self.final_restarts)
        if not 0 < self.l2_epsilon <= 100:
            raise BadInput(
                f"config field 'evaluation.l2_epsilon' must be in (0, 100] (L2 norm "
                f"of a perturbation of pixels in [0, 1]), got {self.l2_epsilon}"
            )


@dataclass
class SanityConfig:
    """Thresholds of the per-study checks against gradient masking (DESIGN.md)."""

    large_epsilon: float = 0.5  # at this budget robust accuracy must fall ...
    large_epsilon_max: float = 0.05  # ... below this
    steps_factor: int = 5  # robust accuracy under steps * factor may not exceed ...
    noise: float = 0.02  # ... the one under `steps` by more than this
    transfer_margin: float = 0.02  # transfer from the base may not beat white-box by more

    def validate(self) -> None:
        for key in ("large_epsilon", "large_epsilon_max", "noise", "transfer_margin"):
            value = getattr(self, key)
            if not 0 <= value <= 1:
                raise BadInput(f"config field 'sanity.{key}' must be in [0, 1], got {value}")
        if self.steps_factor < 2:
            raise BadInput(
                f"config field 'sanity.steps_factor' must be >= 2, got {self.steps_factor}"
            )


@dataclass
class RayConfig:
    """How the Ray Tune backend (`search run --backend ray`) places trials."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions share a GPU between trials
    max_concurrent: int | None = None  # default: as many as the resources allow
    max_failures: int = 1  # retries of a trial whose worker died (FailureConfig)
    storage_path: str | None = None  # Tune's experiment dir; default beside the storage

    def validate(self) -> None:
        _positive("ray.cpus_per_trial", self.cpus_per_trial)
        _positive("ray.gpus_per_trial", self.gpus_per_trial, allow_zero=True)
        if self.max_concurrent is not None:
            _positive("ray.max_concurrent", self.max_concurrent)
        _positive("ray.max_failures", self.max_failures, allow_zero=True)


@dataclass
class LatencyConfig:
    """How latency is timed; fixed per study so trials are comparable."""

    batch_size: int = 1
    threads: int = 1
    warmup: int = 10
    repeats: int = 50
    int8: bool = True  # also time real int8 kernels when every layer has <= 8 bits
    calibration_samples: int = 512  # training images that calibrate int8 activations
    # onnxruntime: the ONNX file that ships (int8 when every layer has <= 8 bits), CPU
    # provider; the default, as its latency follows the work (FLOPs) best (README,
    # bench_latency_runtimes.py). torch: the faster torch form (float, torch.ao int8)
    runtime: str = "onnxruntime"
    # predicted: from the study's latency model (search.latency_model), calibrated once
    # per study; the same number for the same trial at any machine load. measured: each
    # trial timed as it finishes (noisy on a busy machine). The front is re-timed either way
    mode: str = "measured"
    # a device agent's URL (`search latency-agent` on the user's device, docs/latency-agent.md):
    # the ONNX files are timed there, not here; its token is read from the environment
    # variable named by `token_env` and never stored with the study
    device: str | None = None
    token_env: str = TOKEN_ENV
    # relative difference of latency below which two front members count as equally fast:
    # the front flags a member that is there only by such a difference (`latency_resolved`)
    tolerance: float = 0.1

    def validate(self) -> None:
        _choice("latency.runtime", self.runtime, RUNTIMES)
        _choice("latency.mode", self.mode, LATENCY_MODES)
        for key in ("batch_size", "threads", "repeats", "calibration_samples"):
            _positive(f"latency.{key}", getattr(self, key))
        _positive("latency.warmup", self.warmup, allow_zero=True)
        _finite("latency.tolerance", self.tolerance)
        if not 0 <= self.tolerance < 1:
            raise BadInput(
                f"config field 'latency.tolerance' must be in [0, 1) (a relative "
                f"difference), got {self.tolerance}"
            )
        if self.device is not None:
            _check_agent_url(self.device, self.runtime, self.token_env)
            return  # the threads are the device's: the agent checks them against its cores
        cores = os.cpu_count() or 1
        if self.threads > cores:  # more would time the scheduler, not the model
            raise BadInput(
                f"config field 'latency.threads' must be <= this machine's "
                f"{cores} cores, got {self.threads}"
            )


def _check_agent_url(url: Any, runtime: str, token_env: Any) -> None:
    """`latency.device`: http(s)://HOST[:PORT][/], no credentials, query or fragment."""
    allowed = "an agent's URL such as http://192.168.1.20:8765"
    if not isinstance(url, str):
        raise BadInput(f"config field 'latency.device' must be {allowed}, got {url!r}")
    parts = urllib.parse.urlsplit(url)
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise BadInput(f"config field 'latency.device' has a bad port: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"config field 'latency.device' must be {allowed}, got {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise BadInput(
            "config field 'latency.device' must not hold credentials, a query or a fragment "
            "(the token goes in the environment variable latency.token_env names)"
        )
    if runtime != "onnxruntime":
        raise BadInput(
            "config field 'latency.device' needs latency.runtime: onnxruntime "
            f"(the agent times ONNX files), got {runtime!r}"
        )
    if not isinstance(token_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token_env):
        raise BadInput(
            "config field 'latency.token_env' must name an environment variable "
            f"(letters, digits, _), got {token_env!r}"
        )


@dataclass
class FidelityConfig:
    """Multi-fidelity search: fine-tuning budgets as rungs, trials promoted rung by rung.

    With `enabled`, a trial fine-tunes by images seen (not `space.epochs`) on a schedule
    of rungs: `min_images`, then x `factor` each rung, up to `max_images` (the last
    rung). After each rung the trial is scored and goes on only while it ranks among the
    top 1 / `factor` of the trials that reached that rung (non-dominated sorting, ties by
    crowding distance): asynchronous successive halving in the multi-objective study.
    """

    enabled: bool = False
    min_images: int = 2000
    max_images: int = 54000
    factor: float = 3.0

    def validate(self) -> None:
        _positive("fidelity.min_images", self.min_images)
        _positive("fidelity.max_images", self.max_images)
        _positive("fidelity.factor", self.factor)
        if self.factor <= 1:
            raise BadInput(
                f"config field 'fidelity.factor' must be > 1 (each rung grows "
                f"the budget), got {self.factor}"
            )
        if self.min_images > self.max_images:
            raise BadInput(
                f"config field 'fidelity.min_images' must be <= "
                f"fidelity.max_images, got {self.min_images} > {self.max_images}"
            )

    def rungs(self) -> list[int]:
        """The budgets (training images) at which a trial is scored, smallest first."""
        budgets, budget = [], float(self.min_images)
        while budget < self.max_images:
            budgets.append(int(round(budget)))
            budget *= self.factor
        return [*budgets, self.max_images]


@dataclass
class StudyConfig:
    """A whole study. `search run` with no arguments uses these defaults (digits)."""

    study: str = "aer-digits"
    storage: str | None = None  # SQLAlchemy URL or journal:PATH; default sqlite:///aer-search.db
    artifacts: str | None = None  # trial weights; default: beside a file storage, else ./
    trials: int = 30
    timeout: float | None = None
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    sampler: str = "tpe"  # tpe | gp | nsga2 | random
    # uniform hand-picked points (the paper's kind of setting) tried before the sampler's
    # own: the search starts where hand-tuning ends (see search.study._warm_start)
    warm_start: int = 6
    objectives: list[str] = field(
        default_factory=lambda: ["robust_accuracy", "latency_ms", "size_bytes"]
    )
    # feasibility rules such as "latency_ms <= 2" or "clean_accuracy >= 0.9": infeasible
    # trials are kept but never on the front
    constraints: list[str] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    sanity: SanityConfig = field(default_factory=SanityConfig)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)

    def validate(self) -> StudyConfig:
        """Check every field; raise BadInput naming the first bad one. Returns self."""
        name = self.study.replace("-", "").replace("_", "")
        if not name or not name.isascii() or not name.isalnum() or len(self.study) > 128:
            raise BadInput(
                f"config field 'study' must be 1 to 128 ASCII letters, digits, '-' or '_', "
                f"got {self.study[:80]!r}"
            )
        _positive("trials", self.trials)
        if not 0 <= self.seed < 2**32:  # numpy's and torch's seeding range
            raise BadInput(f"config field 'seed' must be in [0, 2**32), got {self.seed}")
        if self.timeout is not None:
            _positive("timeout", self.timeout)
        _check_device(self.device)
        _positive("warm_start", self.warm_start, allow_zero=True)
        _choice("sampler", self.sampler, SAMPLERS)
        if not self.objectives:
            raise BadInput("config field 'objectives' must name at least one objective")
        if len(set(self.objectives)) != len(self.objectives):
            raise BadInput(f"config field 'objectives' names one twice: {self.objectives}")
        for section in (
            self.data,
            self.model,
            self.space,
            self.finetune,
            self.evaluation,
            self.latency,
            self.sanity,
            self.ray,
            self.fidelity,
        ):
            section.validate()
        for text in self.constraints:
            parse_constraint(text)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_constraint(text: str, metrics: list[str] | None = None) -> tuple[str, str, float]:
    """Split "latency_ms <= 2" into (metric, operator, bound), or raise BadInput.

    With `metrics`, the metric must be one of them (the resolve step passes the study's
    metric names; the schema alone checks only the form).
    """
    parts = text.split()
    if len(parts) != 3 or parts[1] not in CONSTRAINT_OPERATORS:
        raise BadInput(
            f"config field 'constraints': {text!r} must read 'METRIC <= NUMBER' or "
            f"'METRIC >= NUMBER'"
        )
    metric, operator, bound = parts
    if metrics is not None and metric not in metrics:
        raise BadInput(
            f"config field 'constraints': unknown metric {metric!r} in {text!r}; "
            f"allowed: {', '.join(metrics)}{close_matches(metric, metrics)}"
        )
    try:
        value = float(bound)
    except ValueError:
        value = None
    if value is not None and not math.isfinite(value):
        raise BadInput(
            f"config field 'constraints': bound {bound!r} in {text!r} must be a finite number"
        )
    try:
        return metric, operator, float(bound)
    except ValueError:
        raise BadInput(
            f"config field 'constraints': bound {bound!r} in {text!r} is not a number"
        ) from None


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    _finite(name, value)
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise BadInput(f"config field '{name}' must be {bound}, got {value}")


def _finite(name: str, value: float) -> None:
    """NaN and inf are bad input, named as such (comparisons with NaN are all false)."""
    if not math.isfinite(value):
        raise BadInput(f"config field '{name}' must be a finite number, got {value}")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise BadInput(
            f"config field '{name}' must be one of {', '.join(allowed)}, got {value!r}"
            f"{close_matches(value, allowed)}"
        )


def _range(name: str, pair: list[Any]) -> tuple[float, float]:
    for value in pair:
        _finite(name, value)
    if len(pair) != 2 or pair[0] > pair[1]:
        raise BadInput(f"config field '{name}' must be [low, high] with low <= high, got {pair}")
    return pair[0], pair[1]


def _check_device(device: str) -> None:
    check_device_name(device, "config field 'device'")
