from marshmallow import fields, validate

from schemas.common import Base, Path
from workers.watch import config as limits


class WatchFolderFields(Base):
    """Fields a client may set; defaults are applied by workers/watch/config.py (spec table)."""

    folder_path = Path()
    cache_dir = Path(allow_none=True)
    enabled = fields.Boolean()
    enable_visual_analysis = fields.Boolean()
    enable_audio_analysis = fields.Boolean()
    enable_face_analysis = fields.Boolean()
    audio_language = fields.String(validate=validate.Length(min=1, max=limits.LANGUAGE_MAX_CHARS))
    cluster_job_name = fields.String(allow_none=True, validate=validate.Length(max=limits.JOB_NAME_MAX_CHARS))
    face_eps = fields.Float(validate=validate.Range(min=0.0, min_inclusive=False, max=limits.FACE_EPS_MAX))
    face_min_samples = fields.Integer(strict=True,
                                      validate=validate.Range(min=1, max=limits.FACE_MIN_SAMPLES_MAX))
    excluded_extensions = fields.List(fields.String(validate=validate.Length(max=limits.EXTENSION_MAX_CHARS)),
                                      validate=validate.Length(max=limits.LIST_MAX_ITEMS))
    excluded_filename_globs = fields.List(fields.String(validate=validate.Length(max=limits.GLOB_MAX_CHARS)),
                                          validate=validate.Length(max=limits.LIST_MAX_ITEMS))


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
