"""Engines, pipelines, stores and settings: everything below HTTP and Celery.

``analyze_file`` (workers/analysis.py) is the front door for library use; it is imported on
first use so that ``import workers.store`` stays light.
"""

_FRONT_DOOR = ("AnalysisOptions", "FileAnalysis", "analyze_file")


def __getattr__(name: str):
    if name in _FRONT_DOOR:
        from workers import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'workers' has no attribute {name!r}")
