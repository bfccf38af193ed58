"""Face clustering endpoints below the routes: map faces-service errors to HTTP statuses."""

from __future__ import annotations

import functools
import uuid

from app.errors import ApiError
from app.paths import check_cache_dir
from tasks import state
from tasks.celery_app import celery_app


def _mapped(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from workers.faces.storage import CorruptJob, UnknownJob

        try:
            return function(*args, **kwargs)
        except UnknownJob as exc:
            raise ApiError(404, f"Unknown cluster job: {exc.args[0] if exc.args else exc}") from None
        except LookupError as exc:
            raise ApiError(404, str(exc.args[0]) if exc.args else str(exc)) from None
        except CorruptJob as exc:
            # The job's files are damaged on disk: a server-side fault of this job only.
            raise ApiError(500, f"Face clustering job cannot be read: {exc}") from None
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None

    return wrapper


@_mapped
def list_jobs(cache_dir: str) -> dict:
    from workers.faces.service import list_jobs as list_all

    return list_all(check_cache_dir(cache_dir))


@_mapped
def samples(data: dict) -> dict:
    from workers.faces.service import cluster_samples

    return cluster_samples(check_cache_dir(data["cache_dir"]), data["cluster_job_name"],
                           data["limit_per_cluster"], data["min_cluster_size"], data["max_cluster_size"],
                           data["max_clusters"], data["include_noise"])


@_mapped
def faces(data: dict) -> dict:
    from workers.faces.service import cluster_faces

    ids = data.get("cluster_ids") or ([data["cluster_id"]] if data.get("cluster_id") else None)
    if not ids:
        raise ApiError(400, "cluster_id or cluster_ids is required")
    return cluster_faces(check_cache_dir(data["cache_dir"]), data["cluster_job_name"], ids, data["limit"],
                         data["offset"])


@_mapped
def names(data: dict) -> dict:
    from workers.faces.service import set_names

    return set_names(check_cache_dir(data["cache_dir"]), data["cluster_job_name"], data["assignments"])


@_mapped
def modify(data: dict) -> dict:
    from workers.faces.service import modify as modify_job

    if not data["merges"] and not data["moves"]:
        raise ApiError(400, "nothing to do: give merges and/or moves")
    result = modify_job(check_cache_dir(data["cache_dir"]), data["cluster_job_name"], data["merges"],
                        data["moves"])
    return {"message": f"{result.get('merged', 0)} merges and {result.get('moved', 0)} moves applied", **result}


@_mapped
def recluster(data: dict) -> dict:
    from workers.faces.storage import job_folder, read_meta

    cache_dir = check_cache_dir(data["cache_dir"])
    if read_meta(job_folder(cache_dir, data["cluster_job_name"])) is None:
        raise ApiError(404, f"Unknown cluster job: {data['cluster_job_name']}")
    task_id = str(uuid.uuid4())
    state.register_task(task_id, "recluster")
    params = {k: data[k] for k in ("eps", "min_samples", "auto_detect_params", "clear_names")}
    celery_app.send_task("sightline.recluster", args=[task_id, cache_dir, data["cluster_job_name"], params])
    return {"message": "Re-clustering started", "task_id": task_id}
