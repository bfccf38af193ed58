from flask import Blueprint

from app.api import endpoint
from app.errors import ApiError
from app.paths import check_cache_dir, check_media
from app.services import watch_service
from schemas.watch_folders import (
    ServiceReply,
    ServiceStatus,
    WatchFolderCreate,
    WatchFolderFields,
    WatchFolderList,
    WatchFolderReply,
)
from workers.watch import config

bp = Blueprint("watch_folders", __name__)


def _checked(data: dict, new: bool) -> dict:
    if data.get("folder_path"):
        check_media(data["folder_path"], "folder_path")
    if data.get("cache_dir"):
        check_cache_dir(data["cache_dir"])
    elif new or "cache_dir" in data:
        # Without a cache_dir the default one is used; say so now rather than failing every
        # analysis later when the allowed roots do not include it.
        default = config.default_cache_dir()
        try:
            check_cache_dir(default)
        except ApiError:
            raise ApiError(400, f"cache_dir is required: the default ({default}) is outside the allowed "
                                "roots (SIGHTLINE_MEDIA_ROOTS / SIGHTLINE_EXPORT_ROOTS)") from None
    return data


def _config_call(function, *args):
    try:
        return function(*args)
    except config.UnknownWatchFolder as exc:
        raise ApiError(404, str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


@endpoint(bp, "/watch-folders", "GET", summary="Watch folders and the service status", tag="Watch folders",
          response=WatchFolderList, errors=())
def list_watch_folders():
    return {"watch_folders": config.list_folders(), "service_status": watch_service.status()}


@endpoint(bp, "/watch-folders", "POST", summary="Add a watch folder (the folder must exist)",
          tag="Watch folders", body=WatchFolderCreate, response=WatchFolderReply, status=201,
          errors=(400, 403))
def add_watch_folder(data):
    folder = _config_call(config.add_folder, _checked(data, new=True))
    return {"message": f"Watch folder added: {folder['folder_path']}", "watch_folder": folder}


@endpoint(bp, "/watch-folders/<watch_folder_id>", "PUT", summary="Change some settings of a watch folder",
          tag="Watch folders", body=WatchFolderFields, response=WatchFolderReply, errors=(400, 403, 404))
def update_watch_folder(watch_folder_id, data):
    folder = _config_call(config.update_folder, watch_folder_id, _checked(data, new=False))
    return {"message": f"Watch folder updated: {folder['folder_path']}", "watch_folder": folder}


@endpoint(bp, "/watch-folders/<watch_folder_id>", "DELETE", summary="Remove a watch folder (keeps its data)",
          tag="Watch folders", response=WatchFolderReply, errors=(404,))
def delete_watch_folder(watch_folder_id):
    folder = _config_call(config.delete_folder, watch_folder_id)
    return {"message": f"Watch folder removed: {folder['folder_path']}", "watch_folder": folder}


@endpoint(bp, "/watch-folders/service/start", "POST", summary="Start the watch folder service",
          tag="Watch folders", response=ServiceReply, errors=())
def start_service():
    return watch_service.start()


@endpoint(bp, "/watch-folders/service/stop", "POST", summary="Stop the watch folder service",
          tag="Watch folders", response=ServiceReply, errors=())
def stop_service():
    return watch_service.stop()


@endpoint(bp, "/watch-folders/service/status", "GET", summary="Is the service running, and what is it doing",
          tag="Watch folders", response=ServiceStatus, errors=())
def service_status():
    return watch_service.status()
