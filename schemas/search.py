from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.common import Base, Path, max_results, schema


class PersonFilter(Base):
    cluster_job_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    person_name = fields.String(validate=validate.Length(min=1, max=200))
    cluster_id = fields.String(validate=validate.Length(min=1, max=200))

    @validates_schema
    def _one_of(self, data, **kwargs):
        if not data.get("person_name") and not data.get("cluster_id"):
            raise ValidationError("each people_filter entry needs person_name or cluster_id")


class _VisualSearch(Base):
    cache_dir = Path(required=True)
    media_paths = fields.List(Path(), load_default=list)
    max_results = max_results(50)
    search_all = fields.Boolean(load_default=False)
    exclude = fields.List(fields.String(validate=validate.Length(min=1, max=500)), load_default=list,
                          validate=validate.Length(max=20))
    text_weight = fields.Float(load_default=1.0, validate=validate.Range(min=0.0, max=100.0))


class TextSearchRequest(_VisualSearch):
    query = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    people_filter = fields.List(fields.Nested(PersonFilter), load_default=list)
    people_filter_mode = fields.String(load_default="and", validate=validate.OneOf(["and", "or"]))


class _NeedsQueryForExclude(_VisualSearch):
    query = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=1000))

    @validates_schema
    def _exclude_needs_query(self, data, **kwargs):
        if data.get("exclude") and not data.get("query"):
            raise ValidationError("exclude requires query", "exclude")


class ImageSearchRequest(_NeedsQueryForExclude):
    image_path = Path(required=True, roots="reference")


class FrameSearchRequest(_NeedsQueryForExclude):
    media_path = Path(required=True)
    time_seconds = fields.Float(required=True, validate=validate.Range(min=0, max=10 ** 7))


VisualMatch = schema("VisualMatch", frame_idx=fields.String(required=True), timestamp=fields.String(required=True),
                     image=str | None, scene_start_timestamp=str, scene_end_timestamp=str, original_index=int,
                     hash_str=str, video_path=str)
VisualSearchResponse = schema("VisualSearchResponse", matches=[VisualMatch])


class TranscriptSearchRequest(Base):
    query = fields.String(required=True, validate=validate.Length(min=1, max=1000))
    cache_dir = Path(required=True)
    media_paths = fields.List(Path(), load_default=list)
    max_results = max_results(50)
    search_all = fields.Boolean(load_default=True)


TranscriptMatch = schema("TranscriptMatch", media_path=str, hash_str=str, start_seconds=float, end_seconds=float,
                         text=str, start_timestamp=str, end_timestamp=str)
TranscriptSearchResponse = schema("TranscriptSearchResponse", matches=[TranscriptMatch])
