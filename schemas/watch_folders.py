from marshmallow import fields

from schemas.common import Base, Path
from workers.watch.fields import WatchFolderRules


class WatchFolderFields(Base, WatchFolderRules):
    """Fields a client may set (their rules: workers/watch/fields.py); defaults are applied by
    workers/watch/config.py (spec table). Paths are checked against the allowed roots here."""

    folder_path = Path()
    cache_dir = Path(allow_none=True)


class WatchFolderCreate(WatchFolderFields):
    folder_path = Path(required=True)


class WatchFolder(WatchFolderFields):
    id = fields.String()
    created_at = fields.Integer()
    last_poll_time = fields.Integer(allow_none=True)
    files_analyzed_count = fields.Integer()
    cache_dir = fields.String(allow_none=True)
    folder_path = fields.String()


class ServiceStatus(Base):
    state = fields.String()
    current_folder = fields.String(allow_none=True)
    current_file = fields.String(allow_none=True)
    current_task_id = fields.String(allow_none=True, metadata={
        "description": "sightline extension: the analysis task the service runs now (a Socket.IO room)"})
    files_pending = fields.Integer()
    files_processed_this_session = fields.Integer()
    last_error = fields.String(allow_none=True)
    paused_until = fields.Float(allow_none=True)
    folder_stats = fields.Dict(metadata={
        "description": "per watch folder id: pending, waiting_for_stable, last_poll_time, submitted, "
                       "analyzed, failed, last_task_id, error (this session)"})


class WatchFolderList(Base):
    watch_folders = fields.List(fields.Nested(WatchFolder))
    service_status = fields.Nested(ServiceStatus)


class WatchFolderReply(Base):
    message = fields.String()
    watch_folder = fields.Nested(WatchFolder)


class ServiceReply(Base):
    message = fields.String()
    service_status = fields.Nested(ServiceStatus)
