"""Face re-clustering on the ``analysis`` queue (see workers/faces)."""
