"""The API process: Flask + Flask-SocketIO on eventlet. Run by ``sightline serve``.

``eventlet.monkey_patch()`` must run before anything imports sockets or threads, so this
module is the process entry point (``python -m app.server``) and patches first.
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402

log = logging.getLogger("sightline.api")

WATCHDOG_EVERY = 5.0


def _watchdog() -> None:
    """Fails a task whose worker died, so its room hears about it within ~30 s."""
    from app.services.watchdog import check_current
    from app.socket import emit_progress

    while True:
        eventlet.sleep(WATCHDOG_EVERY)
        try:
            check_current(emit_progress)
        except Exception as exc:  # noqa: BLE001 - Redis may be restarting; try again next round
            log.debug("watchdog skipped a round: %s", exc)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sightline-api")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)

    from app.factory import create_app
    from app.socket import socketio
    from workers.settings import load_settings, redis_url

    settings = load_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    app = create_app(message_queue=redis_url())
    eventlet.spawn(_watchdog)
    from app.services.watch_service import run_forever

    eventlet.spawn(run_forever, eventlet.sleep)
    log.info("sightline API listening on http://%s:%d/api/v1 (pid %d)", host, port, os.getpid())
    socketio.run(app, host=host, port=port, log_output=False, use_reloader=False)


if __name__ == "__main__":
    main()
