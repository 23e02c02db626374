"""The study configuration: typed sections with their own range checks, read from YAML.

`read_config` (a file or a preset, plus overrides) and `parse_config` (a mapping) check
the schema only; `search.study.load_config` / `config_from_dict` add the resolve step
that checks names against the registries (models, data sets, objectives, spaces).
"""

from search.config._loading import load_yaml_text, parse_config, read_config
from search.config._schema import (
    ALLOWED_BITS,
    CONSTRAINT_OPERATORS,
    DEFAULT_BITS,
    PRESETS_DIR,
    SAMPLERS,
    STRATEGIES,
    DataConfig,
    EvaluationConfig,
    FidelityConfig,
    FinetuneConfig,
    LatencyConfig,
    ModelConfig,
    RayConfig,
    SanityConfig,
    SpaceConfig,
    StudyConfig,
    parse_constraint,
)

__all__ = [
    "load_yaml_text",
    "FidelityConfig",
    "SAMPLERS",
    "ALLOWED_BITS",
    "CONSTRAINT_OPERATORS",
    "DEFAULT_BITS",
    "PRESETS_DIR",
    "STRATEGIES",
    "DataConfig",
    "EvaluationConfig",
    "FinetuneConfig",
    "LatencyConfig",
    "ModelConfig",
    "RayConfig",
    "SanityConfig",
    "SpaceConfig",
    "StudyConfig",
    "parse_config",
    "parse_constraint",
    "read_config",
]
