"""Open a study that aer-search made, for commands and functions that only read it.

`search pareto`, `search trials`, `search dashboard` and `api.load_study_result` all
need the same checks before they touch anything: the storage exists, the study is in
it (or is the only one), and it stores an aer-search config. One place keeps their
error lines alike; each caller names its own fields (a CLI flag or a function argument).
"""

from __future__ import annotations

import optuna

from search.config import StudyConfig, config_from_dict
from search.errors import BadInput
from search.storage import check_storage_url, open_storage, storage_file


def open_stored_study(url: str, name: str | None, *, storage_field: str = "--storage",
                      study_field: str = "--study") -> tuple[optuna.Study, StudyConfig]:
    """The study `name` in storage `url` (or its only study) and its stored config.

    Writes nothing: a missing SQLite or journal file is refused rather than created.
    """
    check_storage_url(url)
    file = storage_file(url)
    if file is not None and not file.is_file():
        raise BadInput(f"{storage_field}: no such file {str(file)!r} (run `search run` first)")
    storage = open_storage(url)
    names = optuna.get_all_study_names(storage)
    if name is None:
        if not names:
            raise BadInput(f"{study_field}: the storage holds no study (run `search run` "
                           f"first)")
        if len(names) > 1:
            raise BadInput(f"{study_field}: the storage holds several studies, name one "
                           f"of: {', '.join(names)}")
        name = names[0]
    if name not in names:
        raise BadInput(f"{study_field}: no study {name!r} in this storage; existing: "
                       f"{', '.join(names) or 'none'}")
    study = optuna.load_study(study_name=name, storage=storage)
    if "config" not in study.user_attrs:
        raise BadInput(f"{study_field}: study {name!r} was not made by aer-search (it "
                       f"stores no config)")
    return study, config_from_dict(study.user_attrs["config"])
