"""Studies as Ray jobs: the cluster's job submission API (its dashboard) runs them.

The job runs `python -m search.cli run CONFIG --backend ray --address auto` on the
cluster, so Ray Tune spreads its trials over the cluster's nodes; its working folder
(the config only) is uploaded with the job. The cluster's Python must have aer-search
installed, and the storage URL must be reachable from the cluster (PostgreSQL for a
real cluster; a SQLite file works for a cluster on this machine). Ray's job client
itself needs the dashboard's packages (`ray[default]`), so it is imported lazily.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from search.core import BadInput
from search.service._errors import Unavailable

CONFIG_FILE = "config.yaml"


class RayJobs:
    """A study's runs as jobs of one Ray cluster."""

    def __init__(self, address: str) -> None:
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError as exc:
            raise BadInput(
                f"--ray-address needs Ray's job submission client: pip install "
                f"'aer-search[service-ray]' ({exc})"
            ) from None
        try:
            self.client = JobSubmissionClient(address)
        except Exception as exc:  # ConnectionError, or a Ray without the dashboard
            first = " ".join(str(exc).split())[:200]
            if "ray[default]" in first:  # the client itself needs the dashboard's packages
                raise BadInput(
                    "--ray-address needs Ray's job submission client: pip install "
                    "'aer-search[service-ray]'"
                ) from None
            raise BadInput(
                f"--ray-address: no Ray job API answers at {address!r} ({first}); "
                f"the cluster's head must run the dashboard (ray[default])"
            ) from None

    def submit(self, name: str, folder: Path, args: list[str]) -> str:
        job = folder / "job"
        job.mkdir(exist_ok=True)
        if (folder / CONFIG_FILE).is_file():
            (job / CONFIG_FILE).write_text((folder / CONFIG_FILE).read_text())
        if args[0] == "run":
            args = [*args, "--backend", "ray", "--address", "auto"]
        entrypoint = " ".join(["python", "-m", "search.cli", *map(shlex.quote, args)])
        try:
            return self.client.submit_job(
                entrypoint=entrypoint,
                runtime_env={"working_dir": str(job)},
                metadata={"aer_search_study": name},
            )
        except Exception as exc:  # the cluster went away since the service started
            raise Unavailable(
                f"the Ray cluster did not take study {name!r}: {' '.join(str(exc).split())[:200]}"
            ) from None

    def alive(self, job_id: str) -> bool:
        """True also while the cluster cannot be asked: an unknown job is not a dead one."""
        try:
            return not self.client.get_job_status(job_id).is_terminal()
        except Exception:
            return True

    def stop(self, job_id: str) -> None:
        try:
            self.client.stop_job(job_id)
        except Exception as exc:
            raise Unavailable(
                f"the Ray cluster did not stop job {job_id}: {' '.join(str(exc).split())[:200]}"
            ) from None

    def exit_code(self, job_id: str) -> int:
        from ray.job_submission import JobStatus

        return 0 if self.client.get_job_status(job_id) == JobStatus.SUCCEEDED else 1
