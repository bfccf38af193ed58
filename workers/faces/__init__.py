"""Faces below the HTTP layer: packed per-job storage (``storage``), hdbscan clustering
(``clustering``) and the operations the Face Clustering endpoints need (``service``).

The detection + embedding engine lives in ``workers.engines.faces``. Nothing here imports
torch or deepface at import time, so the API process may call ``service`` directly.
"""
