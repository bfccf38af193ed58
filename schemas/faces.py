from marshmallow import fields, validate

from schemas.common import Base, Path, schema

JOB_NAME = validate.Length(min=1, max=200)


class ClustersQuery(Base):
    cache_dir = Path(required=True)


ClusterJobInfo = schema("ClusterJobInfo", name=str, total_entries=int, num_clusters=int, noise_entries=int,
                        cluster_ids=[str], face_storage_version=int, media_hashes=[str])
ClustersResponse = schema("ClustersResponse", cluster_jobs=[str], jobs=[ClusterJobInfo])


class SamplesRequest(Base):
    cache_dir = Path(required=True)
    cluster_job_name = fields.String(required=True, validate=JOB_NAME)
    limit_per_cluster = fields.Integer(load_default=12, validate=validate.Range(min=0, max=1000))
    min_cluster_size = fields.Integer(load_default=1, validate=validate.Range(min=0))
    max_cluster_size = fields.Integer(load_default=1_000_000_000, validate=validate.Range(min=0))
    max_clusters = fields.Integer(load_default=100, validate=validate.Range(min=0, max=100000))
    include_noise = fields.Boolean(load_default=False)


ClusterSamples = schema("ClusterSamples", cluster_id=str, name=str | None, size=int, sample_faces=[str])
SamplesResponse = schema("SamplesResponse", cluster_job_name=str, num_clusters=int, num_clusters_after_filter=int,
                         total_entries=int, clusters=[ClusterSamples])


class FacesRequest(Base):
    cache_dir = Path(required=True)
    cluster_job_name = fields.String(required=True, validate=JOB_NAME)
    cluster_id = fields.String(validate=validate.Length(min=1, max=200))
    cluster_ids = fields.List(fields.String(validate=validate.Length(min=1, max=200)),
                              validate=validate.Length(min=1, max=10000))
    limit = fields.Integer(load_default=500, validate=validate.Range(min=1, max=2000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


FacesResponse = schema("FacesResponse", cluster_job_name=str, cluster_ids=[str], total=int, offset=int, limit=int,
                       faces=[dict])


class NameAssignment(Base):
    cluster_id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    name = fields.String(required=True, allow_none=True, validate=validate.Length(max=200))


class NamesRequest(Base):
    cache_dir = Path(required=True)
    cluster_job_name = fields.String(required=True, validate=JOB_NAME)
    assignments = fields.List(fields.Nested(NameAssignment), required=True, validate=validate.Length(max=10000))


NamesResponse = schema("NamesResponse", updated=int,
                       changes=fields.Dict(keys=fields.String(), values=fields.String(allow_none=True)))


class ReclusterRequest(Base):
    cache_dir = Path(required=True)
    cluster_job_name = fields.String(required=True, validate=JOB_NAME)
    eps = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0.0, max=10.0))
    min_samples = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=1000))
    auto_detect_params = fields.Boolean(load_default=False)
    clear_names = fields.Boolean(load_default=False)


class Merge(Base):
    cluster_ids = fields.List(fields.String(validate=validate.Length(min=1, max=200)), required=True,
                              validate=validate.Length(min=1, max=10000))
    target_cluster_id = fields.String(required=True, validate=validate.Length(min=1, max=200))


class Move(Base):
    face_ids = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1, max=100000),
                           metadata={"description": "face ids from /faces/clusters/faces"})
    target_cluster_id = fields.String(required=True, validate=validate.Length(min=1, max=200),
                                      metadata={"description": "a cluster id, 'new' or 'noise'"})


class ModifyRequest(Base):
    cache_dir = Path(required=True)
    cluster_job_name = fields.String(required=True, validate=JOB_NAME)
    merges = fields.List(fields.Nested(Merge), load_default=list)
    moves = fields.List(fields.Nested(Move), load_default=list)


ModifyResponse = schema("ModifyResponse", message=str, merged=int, moved=int, num_clusters=int, cluster_ids=[str],
                        created_cluster_ids=[str], removed_cluster_ids=[str])
