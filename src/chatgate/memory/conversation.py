"""``Conversation``: a thread that remembers, trims itself per its policy and persists.

    chat = chatgate.Conversation(model="openai/gpt-4o-mini", system="Be brief.",
                                 policy=chatgate.TokenBudget(max_tokens=4000))
    chat.send("Hi, I'm Ada.")
    again = chatgate.Conversation.load(chat.id)      # resumes exactly, in another process too

Credentials (api_key, api_base, ...) are never stored: pass them again when loading.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pydantic

from chatgate.accounting import Spend
from chatgate.chat_request import MessageLike
from chatgate.errors import ChatgateError, ConversationNotFoundError, InvalidRequestError
from chatgate.memory.policy import KeepAll, LastTurns, Policy, Summarize, TokenBudget
from chatgate.memory.stream import ConversationStream
from chatgate.memory.summarize import fold_point, summarize, summary_block
from chatgate.memory.tokens import count_message_tokens
from chatgate.memory.trim import fit_budget, last_turns, message_tokens
from chatgate.routed import RouterLike, caller, provider_model
from chatgate.store.defaults import conversation_store
from chatgate.store.records import ConversationRecord, ConversationStore
from chatgate.transport.loop_thread import run_sync
from chatgate.types import AssistantMessage, ChatResponse, Message, SystemMessage, Usage

__all__ = ["Conversation"]

_MESSAGE: pydantic.TypeAdapter[Message] = pydantic.TypeAdapter(Message)
_POLICY: pydantic.TypeAdapter[Policy] = pydantic.TypeAdapter(Policy)
_CREDENTIALS = ("api_key", "api_base", "api_version", "extra_headers", "provider_options")


def _as_message(message: MessageLike | str) -> Message:
    if isinstance(message, str):
        return _MESSAGE.validate_python({"role": "user", "content": message})
    if isinstance(message, Mapping):
        return _MESSAGE.validate_python(message)
    return message


class Conversation:
    """A multi-turn chat with one model that remembers its turns.

    ``send`` / ``asend`` add a user message and the answer; ``stream`` / ``astream`` do the same
    streamed. The ``policy`` keeps each request inside the context (``LastTurns``,
    ``TokenBudget``, ``Summarize``); turns persist under ``id`` in ``store``: a database URL
    (``"postgresql://..."``, ``"sqlite:///file.db"``), a ``ConversationStore``, or by default
    the SQLite file ``$CHATGATE_SQLITE_PATH`` (``./chatgate.db``), so ``Conversation.load(id,
    ...)`` picks a conversation up again. ``usage`` and ``cost`` add up every call made for
    it, summaries included.
    """

    def __init__(
        self,
        id: str | None = None,  # the public name for it
        *,
        model: str,
        system: str | None = None,
        policy: Policy | None = None,
        store: ConversationStore | str | None = None,
        persist: bool = True,
        summarizer: Mapping[str, Any] | None = None,
        api_key: str | None = None,
        api_base: str | None = None,
        router: RouterLike | None = None,
        **params: Any,
    ) -> None:
        """``params`` are request fields sent with every call (temperature, max_tokens...)
        and are stored; ``summarizer`` holds credentials for a Summarize policy's model."""
        for name in ("messages", "stream", "tools"):
            if name in params:
                raise InvalidRequestError(f"{name} is not a Conversation setting", param=name)
        self.id = id or uuid.uuid4().hex
        self.model = model  # with router=, one of the router's model names
        self._router = router  # used, never stored: give it again to load()
        self._count_model = provider_model(router, model)  # whose tokenizer counts turns
        self.system = system
        self.policy: Policy = policy or KeepAll()
        # Connection settings may carry secrets (keys, tokens in headers): used, never stored.
        secret = {n: params.pop(n) for n in _CREDENTIALS if n in params}
        self.params = params
        self.messages: list[Message] = []
        self.summary: str | None = None
        self.summary_covers = 0  # how many of the oldest messages the summary stands for
        self.last_request: list[Message] = []  # what the latest call sent
        self.spend = Spend()
        self._store = conversation_store(store) if persist else None
        self._persisted = 0
        self._credentials = {k: v for k, v in (("api_key", api_key), ("api_base", api_base)) if v}
        self._credentials.update(secret)
        self._summarizer = dict(summarizer or self._credentials)
        self._lock = asyncio.Lock()
        self._streaming = False
        self._costs: dict[int, tuple[Message, int]] = {}

    # --- loading -------------------------------------------------------------------------

    @classmethod
    async def aload(
        cls, id: str, *, store: ConversationStore | str | None = None, **kw: Any
    ) -> Conversation:
        """The stored conversation, exactly as it was saved; ``kw`` gives credentials."""
        chosen = conversation_store(store)
        record = await chosen.load_conversation(id)
        if record is None:
            raise ConversationNotFoundError(f"no stored conversation has id {id!r}", param="id")
        conversation = cls(
            record.id,
            model=record.model,
            system=record.system,
            policy=_POLICY.validate_python(record.policy),
            store=chosen,
            **{**record.params, **kw},
        )
        conversation.messages = [_MESSAGE.validate_python(m) for m in record.messages]
        conversation.summary = record.summary
        conversation.summary_covers = record.summary_covers
        conversation._persisted = len(record.messages)
        return conversation

    @classmethod
    def load(cls, id: str, **kw: Any) -> Conversation:
        result: Conversation = run_sync(cls.aload(id, **kw))
        return result

    # --- totals --------------------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        """Tokens of every call this object made (replies and summaries)."""
        return self.spend.usage

    @property
    def cost(self) -> Decimal | None:
        return self.spend.total_cost

    # --- context -------------------------------------------------------------------------

    def _cost(self, message: Message) -> int:
        """message_tokens, remembered per message object (history is never edited)."""
        cached = self._costs.get(id(message))
        if cached is None or cached[0] is not message:
            cached = self._costs[id(message)] = (
                message,
                message_tokens(self._count_model, message),
            )
        return cached[1]

    def _head(self) -> list[Message]:
        return [SystemMessage(content=self.system)] if self.system else []

    async def _fold(self, new: Message, policy: Summarize) -> None:
        head_tokens = count_message_tokens(self._count_model, self._head())
        until = fold_point(
            self._count_model,
            head_tokens,
            self.messages,
            self.summary_covers,
            new,
            policy,
            self._cost,
        )
        if until is None:
            return
        turns = self.messages[self.summary_covers : until]
        response = await summarize(
            policy, self.summary, turns, self._summarizer, self._router, self.params.get("user")
        )
        self.spend.add(response)
        if not response.content:
            raise ChatgateError(f"the summarizer {policy.model} returned no text")
        self.summary, self.summary_covers = response.content.strip(), until

    async def context(self, new: Message) -> list[Message]:
        """The messages to send with ``new``, per the policy (may refresh the summary)."""
        policy, head = self.policy, self._head()
        if isinstance(policy, KeepAll):
            return [*head, *self.messages, new]
        if isinstance(policy, LastTurns):
            return [*head, *last_turns(self.messages, policy.turns), new]
        truncate = policy.on_oversize == "truncate"
        if isinstance(policy, TokenBudget):
            return fit_budget(
                self._count_model, head, self.messages, new, policy.max_tokens, truncate, self._cost
            )
        await self._fold(new, policy)
        if self.summary:
            head.append(summary_block(self.summary))
        rest = self.messages[self.summary_covers :]
        return fit_budget(
            self._count_model, head, rest, new, policy.max_tokens, truncate, self._cost
        )

    # --- sending -------------------------------------------------------------------------

    def _call_params(self) -> dict[str, Any]:
        return {**self._credentials, **self.params}

    async def _commit(self, new: Message, response: ChatResponse) -> None:
        self.spend.add(response)
        message = response.choices[0].message if response.choices else None
        reply = AssistantMessage.model_validate(
            message.model_dump(exclude_none=True) if message else {"content": ""}
        )
        self.messages += [new, reply]
        try:
            await self.save()
        except BaseException:  # not stored, so not kept: memory and store never diverge
            del self.messages[-2:]
            raise

    async def asend(self, message: MessageLike | str) -> ChatResponse:
        """Append the message, call the model with the policy's context, append the reply,
        persist. On failure nothing is appended."""
        new = _as_message(message)
        async with self._lock:
            self._check_idle()
            self.last_request = await self.context(new)
            params = self._call_params()
            response: ChatResponse = await caller(self._router, params)(
                self.model, self.last_request, stream=False, **params
            )
            await self._commit(new, response)
            return response

    def send(self, message: MessageLike | str) -> ChatResponse:
        result: ChatResponse = run_sync(self.asend(message))
        return result

    async def astream(self, message: MessageLike | str) -> ConversationStream:
        """The reply as a stream; the turn is kept and saved when the stream completes."""
        return await self._open(message, sync=False)

    def stream(self, message: MessageLike | str) -> ConversationStream:
        result: ConversationStream = run_sync(self._open(message, sync=True))
        return result

    def _check_idle(self) -> None:
        if self._streaming:
            raise InvalidRequestError(
                f"conversation {self.id!r} still has a streamed reply open: read it to the "
                "end or close() it before sending again",
                param="message",
            )

    async def _open(self, message: MessageLike | str, sync: bool) -> ConversationStream:
        new = _as_message(message)
        async with self._lock:
            self._check_idle()
            self.last_request = await self.context(new)
            params = self._call_params()
            inner = await caller(self._router, params)(
                self.model, self.last_request, stream=True, **params
            )
            inner._sync = sync  # the sync API iterates on the private loop
            self._streaming = True

        async def done(response: ChatResponse | None) -> None:
            try:
                if response is not None:
                    await self._commit(new, response)
            finally:
                self._streaming = False

        return ConversationStream(inner, done)

    # --- persistence ---------------------------------------------------------------------

    def record(self, start: int = 0) -> ConversationRecord:
        """The conversation as stored; ``messages`` from index ``start`` on."""
        return ConversationRecord(
            id=self.id,
            model=self.model,
            system=self.system,
            policy=self.policy.model_dump(mode="json"),
            params=self.params,
            summary=self.summary,
            summary_covers=self.summary_covers,
            messages=[m.model_dump(mode="json", exclude_unset=True) for m in self.messages[start:]],
        )

    async def save(self) -> None:
        """Write the header and append the messages not yet stored."""
        if self._store is None:
            return
        persisted = self._persisted
        await self._store.save_conversation(self.record(persisted), persisted=persisted)
        self._persisted = len(self.messages)
