from flask import Blueprint

from app.api import endpoint
from schemas.health import Health

bp = Blueprint("health", __name__)


@endpoint(bp, "/health", "GET", summary="Is the backend running (no licence needed)", tag="Health",
          response=Health, errors=(), public=True)
def health():
    return {"status": "ok"}
