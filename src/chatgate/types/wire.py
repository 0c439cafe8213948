"""The two bases of every canonical model: unknown fields kept, and the keys OpenAI always
sends kept on the wire even when they hold their default."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

__all__ = ["OpenModel", "TaggedModel"]


class OpenModel(BaseModel):
    """Base for wire models: unknown fields are kept and passed through."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TaggedModel(OpenModel):
    """A model some of whose fields must always be on the wire, even when filled in by default:
    the ``role`` / ``type`` discriminators, and the keys OpenAI always sends (``_always``).
    ``exclude_unset`` serialization would otherwise drop them."""

    _always: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        tags = tuple(t for t in ("role", "type") if t in cls.model_fields)
        cls._always = tuple(dict.fromkeys(tags + cls._always))

    def model_post_init(self, context: Any, /) -> None:
        self.__pydantic_fields_set__.update(self._always)


# --- content parts -----------------------------------------------------------------------------
