"""The `chatgate` command: serve | config check | spend."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["app_factory", "main"]

CONFIG_ENV = "CHATGATE_CONFIG"


def app_factory() -> object:
    """The app for `uvicorn --factory` and for each worker process of `serve --workers N`."""
    from chatgate import config as config_module
    from chatgate.server.app import create_app

    path = os.environ.get(CONFIG_ENV)
    return create_app(config_module.load(path) if path else None)


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
    options = dict(
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
        loop="uvloop",
        http="httptools",
        access_log=False,
    )
    if args.workers > 1:
        uvicorn.run("chatgate.cli:app_factory", factory=True, workers=args.workers, **options)
    else:
        uvicorn.run(create_app(cfg), **options)
    return 0


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
    from chatgate.cost.report_cli import run

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
    spend.set_defaults(run=_spend)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
