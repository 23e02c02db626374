"""Module paths of earlier versions, kept importable: `search.packing` is
`search.compress._packing`, and so on.

Until the engine was split into subpackages, search/ was one flat folder, and user
code (objectives, model and data factories, spaces: the README's plug-in examples)
imports from those paths. A finder on `sys.meta_path` answers each old name with the
module that now holds its code, so both names are the same module object.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

MOVED = {
    "search.errors": "search.core._errors",
    "search.device": "search.core._device",
    "search.processes": "search.core._processes",
    "search.models": "search.zoo._models",
    "search.data": "search.zoo._data",
    "search.evaluation": "search.robust._attacks",
    "search.finetune": "search.robust._finetune",
    "search.sanity": "search.robust._sanity",
    "search.pruning": "search.compress._pruning",
    "search.quantization": "search.compress._quantization",
    "search.packing": "search.compress._packing",
    "search.int8": "search.compress._int8",
    "search.latency": "search.compress._latency",
    "search.loading": "search.compress._loading",
    "search.base_model": "search.study._base_model",
    "search.trial": "search.study._trial",
    "search.storage": "search.study._storage",
    "search.stored_study": "search.study._open",
    "search.warm_start": "search.study._warm_start",
    "search.baselines": "search.study._baselines",
    "search.optuna_driver": "search.backends._optuna",
    "search.ray_backend": "search.backends._ray",
    "search.pareto": "search.front._rows",
    "search.front_report": "search.front._assess",
    "search.export": "search.front._export",
    "search.plot": "search.front._plot",
    "search.hypervolume": "search.front._hypervolume",
    "spaces.custom": "spaces.user",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name and loads it as the module that replaced it."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module is the one already imported under its new name."""


def install() -> None:
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
