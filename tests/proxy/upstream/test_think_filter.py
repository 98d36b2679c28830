"""`ThinkFilter` (upstream/think.py): however a text is cut into chunks, what it lets through is the text without
its think blocks (and the whitespace after each), as one regular expression over the whole text says."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from glimpse.upstream.think import ThinkFilter, strip_all, strips_think

REFERENCE = re.compile(r"<think>.*?(?:</think>\s*|\Z)", re.DOTALL)
PIECES = st.sampled_from(["<think>", "</think>", "<", "<th", "</", "think>", "ink>", " ", "\n", "a", "b <c", "é"])


@given(st.lists(PIECES, max_size=30).map("".join), st.lists(st.integers(1, 12), max_size=40))
def test_any_split_gives_the_whole_texts_answer(text: str, cuts: list[int]) -> None:
    think, shown, start = ThinkFilter(), "", 0
    for size in cuts:
        shown += think.feed(text[start:start + size])
        start += size
    shown += think.feed(text[start:]) + think.end()
    assert shown == REFERENCE.sub("", text) == strip_all(text)


def test_model_patterns_match_any_case() -> None:
    patterns = ("*deepseek-r1*", "*qwen3*")
    assert strips_think("DeepSeek-R1-Distill-Qwen-7B", patterns) and strips_think("qwen/Qwen3-32B", patterns)
    assert not strips_think("gpt-4o-mini", patterns) and not strips_think("deepseek-chat", patterns)
