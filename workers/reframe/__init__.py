"""The reframe pipeline (API v2): ingest, analyses, the camera path and the vertical render."""
