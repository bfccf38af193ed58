"""Relational state of the reframe pipeline and the editor (SQLAlchemy 2 + Alembic).

Videos, steps, projects, assets, segments, jobs, variants, exports, credits and usage live in
one SQL database: a SQLite file in ``$SIGHTLINE_HOME`` by default, PostgreSQL when
``SIGHTLINE_DATABASE_URL`` names one. The v1 analysis results stay files in ``cache_dir``.

- ``engine.py``: one engine per URL, ``session_scope()`` (one transaction), ``migrate()``.
- ``models.py``: the declarative ``Base`` and the tables; each area adds its own module of
  models imported by ``models.py`` so Alembic sees every table.
- ``migrations/``: Alembic revisions, applied by ``migrate()`` at API and worker start.
"""

from workers.db.engine import get_engine, migrate, session_scope

__all__ = ["get_engine", "migrate", "session_scope"]
