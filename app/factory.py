"""The Flask application: routes, licence check, error handlers and Socket.IO."""

from __future__ import annotations

import logging

from flask import Flask

from app.auth import install_licence_check
from app.errors import register_error_handlers
from app.licences import KeyStore
from app.routes import register_routes
from app.socket import socketio
from workers.settings import load_settings


def create_app(message_queue: str | None = None) -> Flask:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask("sightline")
    app.json.sort_keys = False
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024
    from workers.db import migrate

    migrate()  # the relational state (reframe, editor, credits) is at the newest revision
    register_error_handlers(app)
    install_licence_check(app, KeyStore(settings.keys_file))
    register_routes(app)
    socketio.init_app(app, message_queue=message_queue, async_mode="eventlet", cors_allowed_origins="*",
                      logger=False, engineio_logger=False)
    return app
