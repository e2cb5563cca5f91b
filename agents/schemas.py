"""What the model must return, as pydantic models with count limits (validated, retried once)."""

from __future__ import annotations

import functools
import re
from typing import Annotated, Literal

from pydantic import BaseModel, Field, create_model, field_validator

# Every string has a length cap: it is part of the JSON schema, so a grammar-constrained local model
# cannot run on until max_tokens cuts the JSON off (a small model otherwise sometimes loops).
Word = Annotated[str, Field(min_length=1, max_length=40)]  # a tag or keyword
Short = Annotated[str, Field(min_length=1, max_length=100)]
Sentence = Annotated[str, Field(min_length=1, max_length=200)]
Passage = Annotated[str, Field(min_length=1, max_length=500)]  # llama.cpp grammars grow with the cap


class Interests(BaseModel):
    topics: list[Short] = Field(min_length=3, max_length=5)
    queries: list[Short] = Field(min_length=3, max_length=5)


class UserTurn(BaseModel):
    message: Passage
    done: bool = Field(default=False, json_schema_extra={"examples": [False]})


class Metadata(BaseModel):
    tags: list[Word] = Field(min_length=3, max_length=5)
    keywords: list[Word] = Field(min_length=5, max_length=10)
    related_topics: list[Short] = Field(min_length=3, max_length=5)
    # two or three sentences, as a pattern too: a grammar-constrained model then cannot write one
    summary: str = Field(
        # the character class keeps quotes, backslashes, braces and line breaks out: llama.cpp turns the
        # pattern into grammar as it is, so a bare [^.!?] let a small model close the JSON string early
        pattern=r'^[^.!?"\\{}\[\]\n\r]{10,150}[.!?]( [^.!?"\\{}\[\]\n\r]{10,150}[.!?]){1,2}$',
        json_schema_extra={
            "examples": [
                "The user asked how to protect daytime sleep after night shifts. The assistant explained blackout "
                "curtains and anchor sleep, citing two sources."
            ]
        },
    )
    tone: Short
    user_intent: Sentence
    assistant_style: Short
    sentiment: Literal["positive", "neutral", "negative", "mixed"]
    contrasting_perspectives: list[Sentence] = Field(max_length=3)
    gaps: list[Sentence] = Field(max_length=3)
    missed_questions: list[Sentence] = Field(max_length=3)
    theme: Short
    sub_theme: Short
    hypotheses: list[Sentence] = Field(min_length=2, max_length=3)
    inferred_persona: Sentence
    next_question: Sentence

    @field_validator("summary")
    @classmethod
    def two_or_three_sentences(cls, value: str) -> str:
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", value.strip()) if s]
        if not 2 <= len(sentences) <= 3:
            raise ValueError(f"the summary must be 2–3 sentences, not {len(sentences)}")
        return value


class Variation(BaseModel):
    prompt: Passage
    response: Passage
    tone: Short
    detail: Literal["brief", "standard", "detailed"]


@functools.cache
def variations_of(n: int) -> type[BaseModel]:
    """A schema asking for exactly `n` variations (the count is part of the schema the model sees)."""
    return create_model("Variations", variations=(list[Variation], Field(min_length=n, max_length=n)))
