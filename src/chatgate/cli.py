"""The `chatgate` command: serve | config check | spend | keys | store | chat | batch |
route-eval."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatgate.config import GeneralSettings

__all__ = ["app_factory", "main"]

CONFIG_ENV = "CHATGATE_CONFIG"
ACCESS_LOG_ENV = "CHATGATE_ACCESS_LOG"
# How long the supervisor waits for a new worker to be ready (a reload replaces each one) and
# for a live one to answer its health ping. uvicorn's 5 s default is less than a worker's
# start-up (imports, migrations, the model table) takes on a loaded machine: past it the
# restart is silently abandoned and every worker keeps the old config.
WORKER_START_TIMEOUT_S = 60


def app_factory() -> object:
    """The app for `uvicorn --factory` and for each worker process of `serve --workers N`."""
    from chatgate import config as config_module
    from chatgate.server.app import create_app

    path = os.environ.get(CONFIG_ENV)
    cfg = config_module.load(path) if path else None
    access_log = os.environ.get(ACCESS_LOG_ENV) == "1"
    return create_app(cfg, config_path=path, access_log=access_log, freeze_heap=True)


def _banner(host: str, port: int, names: list[str], open_providers: list[str], auth: bool) -> str:
    url = f"http://{host}:{port}"
    lines = [f"chatgate is serving on {url}  (OpenAI-compatible: base_url={url}/v1)"]
    lines.append("models: " + (", ".join(names) or "none"))
    if open_providers:
        lines.append("also any model of: " + ", ".join(f"{p}/<model>" for p in open_providers))
    if names or open_providers:
        model = names[0] if names else f"{open_providers[0]}/<model>"
        key = ' -H "Authorization: Bearer $CHATGATE_MASTER_KEY"' if auth else ""
        lines.append("try it:")
        lines.append(
            f"  curl -s {url}/v1/chat/completions -H 'Content-Type: application/json'{key} "
            f"""-d '{{"model": "{model}", "messages": [{{"role": "user", "content": """
            """"Say hello in five words."}], "max_tokens": 32}'"""
        )
    else:
        lines.append(
            "no model is configured: pass --config, set a provider key (e.g. "
            "OPENAI_API_KEY), or install the local model (make serve)"
        )
    if auth:
        lines.append(f"admin: {url}/ui (master key); keys: chatgate keys create --help")
    return "\n".join(lines)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from chatgate import config as config_module
    from chatgate.server.app import create_app
    from chatgate.server.models import ModelTable

    if args.config:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    cfg = config_module.load(args.config) if args.config else config_module.Config()
    table = ModelTable(cfg, zero_config=not cfg.model_list)
    auth = cfg.general_settings.master_key is not None
    print(_banner(args.host, args.port, table.names, table.open_providers, auth), flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not auth:
        print(
            "warning: listening beyond loopback with no master_key: anyone who can reach this "
            "port can spend your provider credits",
            file=sys.stderr,
        )
    options: dict[str, Any] = dict(
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
        loop="uvloop",
        http=_http_protocol(cfg.general_settings),
        timeout_keep_alive=cfg.general_settings.keep_alive_timeout_s,
        access_log=False,
        timeout_graceful_shutdown=cfg.general_settings.shutdown_grace_s,
    )
    access_log = not args.no_access_log
    if args.workers > 1:
        _run_workers(args.workers, access_log, options)
    else:
        path = os.environ.get(CONFIG_ENV)
        app = create_app(cfg, config_path=path, access_log=access_log, freeze_heap=True)
        # uvicorn re-raises SIGTERM once its graceful shutdown is over; by then everything has
        # finished, so the process exits 0 rather than dying of the signal.
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the same, after the drain
            uvicorn.run(app, **options)
    return 0


def _http_protocol(settings: GeneralSettings) -> Any:
    """uvicorn's httptools protocol with the header/body deadlines and the connection cap."""
    from chatgate.server.connections import ConnectionLimits, fit_descriptor_limit, protocol

    limits = ConnectionLimits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_connections=settings.max_connections,
    )
    return protocol(fit_descriptor_limit(limits))


def _run_workers(workers: int, access_log: bool, options: dict[str, Any]) -> None:
    """Share-nothing worker processes. Each has its own pools and state; metrics are summed
    through prometheus-client's multiprocess directory (a fresh temp dir unless
    PROMETHEUS_MULTIPROC_DIR is already set), which must exist before the workers start."""
    import uvicorn

    from chatgate.server.gateway import WORKERS_ENV

    own_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="chatgate-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    os.environ[WORKERS_ENV] = str(workers)
    os.environ[ACCESS_LOG_ENV] = "1" if access_log else "0"
    try:
        uvicorn.run(
            "chatgate.cli:app_factory",
            factory=True,
            workers=workers,
            timeout_worker_healthcheck=WORKER_START_TIMEOUT_S,
            **options,
        )
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)


def _config_check(args: argparse.Namespace) -> int:
    from chatgate import config as config_module

    try:
        cfg = config_module.load(args.path)
    except config_module.ConfigError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"ok: {len(cfg.model_list)} model entries")
    return 0


def _spend(args: argparse.Namespace) -> int:
    from chatgate.spend_cli import run

    return run(args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatgate")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the OpenAI-compatible gateway")
    serve.add_argument("--config", help="YAML config file (default: embedded defaults)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="warning")
    serve.add_argument(
        "--no-access-log", action="store_true", help="do not write the JSON access log to stderr"
    )
    serve.set_defaults(run=_serve)
    config = sub.add_parser("config", help="config file tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file")
    check.add_argument("path")
    check.set_defaults(run=_config_check)
    spend = sub.add_parser("spend", help="what was spent, from the spend log")
    spend.add_argument("--by", choices=["model", "key", "team", "user", "day"], default="model")
    spend.add_argument("--since", default="7d", help="7d, 2w, 3m or a date (default: 7d)")
    spend.add_argument("--db", help="database URL (default: the config's, else sqlite)")
    spend.add_argument("--config", help="YAML config whose general_settings.database_url to use")
    spend.add_argument("--json", action="store_true", help="every number exact, as JSON")
    spend.set_defaults(run=_spend)
    from chatgate import chat_cli, route_eval
    from chatgate.batching import cli as batch_cli
    from chatgate.server import keys_cli
    from chatgate.store import cli as store_cli

    keys_cli.add_parser(sub)
    store_cli.add_parser(sub)
    chat_cli.add_parser(sub)
    batch_cli.add_parser(sub)
    route_eval.add_parser(sub)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
