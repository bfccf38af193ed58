from flask import Blueprint

from app.api import endpoint
from app.services import faces
from schemas.common import TaskStarted
from schemas.faces import (
    ClustersQuery,
    ClustersResponse,
    FacesRequest,
    FacesResponse,
    ModifyRequest,
    ModifyResponse,
    NamesRequest,
    NamesResponse,
    ReclusterRequest,
    SamplesRequest,
    SamplesResponse,
)

# A route whose view only hands the validated body on is the service function itself.
bp = Blueprint("faces", __name__)


@endpoint(bp, "/faces/clusters", "GET", summary="Clustering jobs and their statistics", tag="Face clustering",
          query=ClustersQuery, response=ClustersResponse, errors=(400, 403))
def list_clusters(data):
    return faces.list_jobs(data["cache_dir"])


endpoint(bp, "/faces/clusters/samples", "POST", summary="Sample face crops per cluster", tag="Face clustering",
         body=SamplesRequest, response=SamplesResponse, errors=(400, 403, 404, 500))(faces.samples)

endpoint(bp, "/faces/clusters/faces", "POST", summary="A page of the faces of one or more clusters",
         tag="Face clustering", body=FacesRequest, response=FacesResponse, errors=(400, 403, 404, 500))(faces.faces)

endpoint(bp, "/faces/clusters/names", "PUT", summary="Name clusters", tag="Face clustering",
         body=NamesRequest, response=NamesResponse, errors=(400, 403, 404, 500))(faces.names)

endpoint(bp, "/faces/recluster", "POST", summary="Re-run clustering with other parameters (202 + task_id)",
         tag="Face clustering", body=ReclusterRequest, response=TaskStarted, status=202,
         errors=(400, 403, 404))(faces.recluster)

endpoint(bp, "/faces/clusters/modify", "POST", summary="Merge clusters and move faces (all or nothing)",
         tag="Face clustering", body=ModifyRequest, response=ModifyResponse,
         errors=(400, 403, 404, 500))(faces.modify)
