"""`chatgate chat`: talk to any model from the terminal, one question or a conversation.

    chatgate chat -m openai/gpt-4o-mini "Name three rivers."     # one answer, streamed
    echo "Summarize: ..." | chatgate chat -m anthropic/claude-3-5-haiku-latest
    chatgate chat --config config.yaml -m smart                  # a conversation (a TTY)

The answer goes to stdout as it streams, nothing else does, so the output pipes cleanly; the
model, tokens, cost and time go to stderr when it is a terminal. In a conversation, ``/reset``
starts over, ``/exit`` (or Ctrl-D) leaves, and Ctrl-C stops the answer being written.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TextIO

from chatgate.errors import ChatgateError

if TYPE_CHECKING:  # the library loads when the command runs: other commands do not pay
    from chatgate.stream import ChatStream
    from chatgate.types import ChatResponse

__all__ = ["add_parser"]

MODEL_ENV = "CHATGATE_MODEL"
_LOCAL = "local/smollm2-135m"
_HELP = "/reset starts over, /exit (or Ctrl-D) leaves, Ctrl-C stops an answer"


def add_parser(sub: Any) -> None:
    chat = sub.add_parser("chat", help="talk to a model from the terminal")
    chat.add_argument("prompt", nargs="?", help="the question (default: stdin, or a conversation)")
    chat.add_argument("-m", "--model", help=f"provider/model, or a model_list name (${MODEL_ENV})")
    chat.add_argument("--config", help="YAML config: route through its model_list")
    chat.add_argument("--api-base", help="the provider's base URL (e.g. a vLLM server)")
    chat.add_argument("--system", help="a system message")
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--temperature", type=float)
    chat.add_argument(
        "--interactive", action="store_true", help="a conversation even when stdin is not a TTY"
    )
    chat.set_defaults(run=run)


class _Session:
    """Where answers come from (a Router, or a model string) and what they cost so far."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.router: Any = None
        if args.config:
            from chatgate.router import Router

            self.router = Router.from_config(args.config)
        self.model = args.model or os.environ.get(MODEL_ENV) or self._default_model()
        self.options: dict[str, Any] = {}
        if args.api_base:
            self.options["api_base"] = args.api_base
        if args.max_tokens is not None:
            self.options["max_tokens"] = args.max_tokens
        if args.temperature is not None:
            self.options["temperature"] = args.temperature
        self.spent = Decimal(0)

    def _default_model(self) -> str:
        if self.router is not None:
            if self.router.model_names:
                return str(self.router.model_names[0])
        elif importlib.util.find_spec("llama_cpp") is not None:  # what `make serve` installs
            return _LOCAL
        raise ChatgateError(
            f"no model: pass -m provider/model (e.g. -m openai/gpt-4o-mini), set {MODEL_ENV}, "
            "or --config with a model_list"
        )

    def close(self) -> None:
        if self.router is not None:
            self.router.close()

    def stream(self, messages: list[dict[str, Any]]) -> ChatStream:
        if self.router is not None:
            stream: ChatStream = self.router.completion(
                self.model, messages, stream=True, **self.options
            )
            return stream
        from chatgate.client import completion

        answer: ChatStream = completion(self.model, messages, stream=True, **self.options)
        return answer

    def answer(self, messages: list[dict[str, Any]], out: TextIO) -> ChatResponse:
        """Stream one answer to ``out``; the whole of it when done (KeyboardInterrupt: cut)."""
        started = time.perf_counter()
        with self.stream(messages) as stream:
            for chunk in stream:
                for choice in chunk.choices[:1]:
                    if choice.delta.content:
                        out.write(choice.delta.content)
                        out.flush()
            response = stream.final()
        out.write("\n")
        out.flush()
        self.spent += response.cost or 0
        if sys.stderr.isatty():
            sys.stderr.write(_stats(response, time.perf_counter() - started, self.spent) + "\n")
        elif response.truncated:
            sys.stderr.write("[the answer stopped at the token limit]\n")
        return response


def _stats(response: ChatResponse, seconds: float, spent: Decimal) -> str:
    usage = response.usage
    tokens = f"{usage.prompt_tokens} in / {usage.completion_tokens} out" if usage else "no usage"
    cost = "price unknown" if response.cost is None else f"${response.cost:f} (total ${spent:f})"
    served = response.meta.deployment or response.meta.model or response.model
    cut = " · stopped at the token limit" if response.truncated else ""
    return f"[{served} · {tokens} · {cost} · {seconds:.1f} s{cut}]"


def run(args: argparse.Namespace) -> int:
    # the library's warnings (a truncated answer, ...) are said here, in the stats line
    logging.getLogger("chatgate").setLevel(logging.ERROR)
    try:
        session = _Session(args)
    except (ChatgateError, OSError) as exc:  # a config error is a ChatgateError, too
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        return _run(session, args)
    finally:
        session.close()


def _run(session: _Session, args: argparse.Namespace) -> int:
    system = [{"role": "system", "content": args.system}] if args.system else []
    if args.prompt is not None or not (args.interactive or sys.stdin.isatty()):
        prompt = args.prompt if args.prompt is not None else sys.stdin.read()
        try:
            session.answer([*system, {"role": "user", "content": prompt}], sys.stdout)
        except ChatgateError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
        return 0
    return _converse(session, system)


def _converse(session: _Session, system: list[dict[str, Any]]) -> int:
    """A conversation: every turn sends the whole history (a failed or cut turn is dropped)."""
    history = list(system)
    if sys.stdin.isatty():
        print(f"chatgate chat · {session.model} · {_HELP}", file=sys.stderr)
    while True:
        try:
            line = input("you> " if sys.stdin.isatty() else "")
        except (EOFError, KeyboardInterrupt):
            return 0
        text = line.strip()
        if text in ("/exit", "/quit"):
            return 0
        if text == "/reset":
            history = list(system)
            continue
        if not text:
            continue
        turn = [*history, {"role": "user", "content": text}]
        try:
            response = session.answer(turn, sys.stdout)
        except ChatgateError as exc:
            print(f"error: {exc}", file=sys.stderr)
            continue
        except KeyboardInterrupt:
            print("\n[stopped]", file=sys.stderr)
            continue
        history = [*turn, {"role": "assistant", "content": response.content or ""}]
