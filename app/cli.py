"""The ``sightline`` command: serve, worker, keys, models; and the client commands analyze,
search, transcript (``app/client_cli.py``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from workers.settings import EMBEDDED_REDIS_ENV, load_settings


def _apply_redis_url(url: str | None) -> None:
    if url:
        os.environ["SIGHTLINE_REDIS_URL"] = url


def cmd_serve(args) -> int:
    from app.licences import KeyStore
    from app.supervisor import Supervisor, is_loopback

    _apply_redis_url(args.redis_url)
    settings = load_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    settings.home.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("sightline")

    keys = KeyStore(settings.keys_file)
    if not keys.records():
        _record, key = keys.create("pro", "first start")
        print("sightline: created your first Pro licence key (it is shown only this once):", flush=True)
        print(f"    {key}", flush=True)
        print("  more keys: `sightline keys create --tier pro|basic`", flush=True)
    print(f"sightline: settings live in {settings.home} (set SIGHTLINE_HOME to move them)", flush=True)
    if not is_loopback(host) and not (settings.media_roots and settings.export_roots):
        log.warning("Listening on %s, reachable from the network, but SIGHTLINE_MEDIA_ROOTS and "
                    "SIGHTLINE_EXPORT_ROOTS are not both set: any client with a key can read and write any "
                    "path this user can.", host)

    supervisor = Supervisor(settings)
    env = dict(os.environ)
    if settings.redis_url:
        log.info("using Redis at %s; starting the API only (run `sightline worker` on worker machines)",
                 _redact(settings.redis_url))
    else:
        url = supervisor.start_embedded_redis()
        env[EMBEDDED_REDIS_ENV] = url
        log.info("embedded Redis at %s", url)
        supervisor.add_workers(env)
    supervisor.add_api(env, host, port)
    print(f"sightline: serving http://{host}:{port}/api/v1 (Ctrl-C stops everything)", flush=True)
    return supervisor.run()


def cmd_worker(args) -> int:
    from app.supervisor import Supervisor

    _apply_redis_url(args.redis_url)
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.redis_url:
        print("sightline worker: needs --redis-url or SIGHTLINE_REDIS_URL (the server's Redis)", file=sys.stderr)
        return 2
    supervisor = Supervisor(settings)
    supervisor.add_workers(dict(os.environ), queues=args.queues, concurrency=args.concurrency)
    return supervisor.run()


def _redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def cmd_keys(args) -> int:
    from app.licences import KeyStore

    store = KeyStore(load_settings().keys_file)
    if args.keys_command == "create":
        if args.credits is not None and args.credits < 0:
            print("--credits must be 0 or more", file=sys.stderr)
            return 2
        record, key = store.create(args.tier, args.label or "")
        if args.credits is not None:
            _set_credits(record.id, args.credits)
        print(f"created {record.tier} key {record.id}" + (f" ({record.label})" if record.label else "")
              + (f" with {args.credits} credits" if args.credits is not None else ""), file=sys.stderr)
        print(key)
        return 0
    if args.keys_command == "list":
        records = store.records()
        if not records:
            print("no keys yet (one is created on the first `sightline serve`)")
        balances = _balances([r.id for r in records])
        for record in records:
            credits = balances.get(record.id)
            print(f"{record.id}\t{record.tier}\t{record.label}\t"
                  + ("unmetered" if credits is None else f"{credits} credits"))
        return 0
    if args.keys_command == "credits":
        record = store.find(args.key_id)
        if record is None:
            print(f"no key with id or label {args.key_id!r}", file=sys.stderr)
            return 1
        from workers.db import credits as credit_store
        from workers.db import migrate, session_scope

        migrate()
        with session_scope() as session:
            if args.set is not None:
                credit_store.set_credits(session, record.id, args.set)
            if args.add is not None:
                credit_store.add_credits(session, record.id, args.add)
            left = credit_store.balance(session, record.id)
        print(f"{record.id}\t" + ("unmetered" if left is None else f"{left} credits"))
        return 0
    if args.keys_command == "revoke":
        removed = store.revoke(args.key_id)
        if not removed:
            print(f"no key with id or label {args.key_id!r}", file=sys.stderr)
            return 1
        print(f"revoked {removed} key(s)")
        return 0
    return 2


def _set_credits(key_id: str, credits: int) -> None:
    from workers.db import credits as credit_store
    from workers.db import migrate, session_scope

    migrate()
    with session_scope() as session:
        credit_store.set_credits(session, key_id, credits)


def _balances(key_ids: list[str]) -> dict[str, int | None]:
    from workers.db import credits as credit_store
    from workers.db import migrate, session_scope

    migrate()
    with session_scope() as session:
        return {key_id: credit_store.balance(session, key_id) for key_id in key_ids}


def cmd_models(args) -> int:
    from workers import models_admin

    if args.models_command == "list":
        for row in models_admin.list_models():
            mark = "downloaded" if row["downloaded"] else "-"
            print(f"{row['key']}\t{row['kind']}\t{row['family']}\t{mark}\t{row.get('path', '')}")
        return 0
    try:
        if args.models_command == "pull":
            models_admin.pull_model(args.key)
            print(f"pulled {args.key}")
            return 0
        if args.models_command == "import":
            spec = models_admin.import_model(args.key, args.source)
            print(f"imported {spec.key} ({spec.kind}, {spec.family})")
            return 0
    except Exception as exc:  # noqa: BLE001 - the CLI reports, it does not trace back
        print(f"sightline models {args.models_command}: {exc}", file=sys.stderr)
        return 1
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sightline", description="Self-hosted media analysis server "
                                     "(Jumper Public API v1). Settings: SIGHTLINE_* environment variables.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (embedded Redis + worker + API without --redis-url)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1, SIGHTLINE_HOST)")
    serve.add_argument("--port", type=int, help="port (default 6699, SIGHTLINE_PORT)")
    serve.add_argument("--redis-url", help="use this Redis and start the API only (SIGHTLINE_REDIS_URL)")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run analysis/query workers against a server's Redis")
    worker.add_argument("--queues", default="analysis,query", help="comma-separated: analysis,query")
    worker.add_argument("--concurrency", type=int, help="analysis processes (default 1)")
    worker.add_argument("--redis-url", help="the server's Redis (SIGHTLINE_REDIS_URL)")
    worker.set_defaults(func=cmd_worker)

    keys = sub.add_parser("keys", help="licence keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; the key alone is printed on the last line")
    create.add_argument("--tier", choices=["pro", "basic"], default="pro")
    create.add_argument("--label", default="")
    create.add_argument("--credits", type=int, help="metered: start with N credits (default: unmetered)")
    keys_sub.add_parser("list", help="list keys (ids, tiers, labels; never secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id or label")
    revoke.add_argument("key_id")
    credits = keys_sub.add_parser("credits", help="show or change a key's credit balance")
    credits.add_argument("key_id", help="key id or label")
    credits.add_argument("--add", type=int, help="add N credits (negative takes them away)")
    credits.add_argument("--set", type=int, help="set the balance to N")
    keys.set_defaults(func=cmd_keys)

    models = sub.add_parser("models", help="model files")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    models_sub.add_parser("list", help="catalogue and what is on this machine")
    pull = models_sub.add_parser("pull", help="download a model from the hub (needs internet)")
    pull.add_argument("key")
    imp = models_sub.add_parser("import", help="register a local checkpoint folder under a key")
    imp.add_argument("key")
    imp.add_argument("source")
    models.set_defaults(func=cmd_models)

    from app.client_cli import add_client_commands

    add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
