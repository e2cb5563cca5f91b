"""The inline quality checks over many conversations, on one core.

Each conversation is made like a swarm's: four user turns and four cited assistant answers of about
80 words (most words of a cited sentence from its page), five source pages of about 1,500 characters
each, and the default recipe's metadata, from a 5,000-word made-up vocabulary drawn Zipf-like. The
checks run one conversation after another in this process (one core), as `swarm run` runs them after
each conversation.

    python benchmarks/quality_speed.py                 # 10,000 conversations
    python benchmarks/quality_speed.py --conversations 2000
"""

from __future__ import annotations

import argparse
import random
import time

from agents.quality import CHECKS, check
from agents.quality.checks import View


def vocabulary(rng: random.Random, size: int = 5_000) -> list[str]:
    """Made-up words of 3–10 letters; drawn with Zipf-like weights, as words in text are."""
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10))) for _ in range(size)]


class Text:
    def __init__(self, rng: random.Random) -> None:
        self.rng, self.words = rng, vocabulary(rng)
        self.weights = [1 / (rank + 1) for rank in range(len(self.words))]

    def __call__(self, n: int, source: str | None = None) -> str:
        """n words; with `source`, about 60 % of them taken from it (an answer drawing on its page)."""
        picked = self.rng.choices(self.words, self.weights, k=n)
        if source:
            from_page = source.split()
            picked = [self.rng.choice(from_page) if self.rng.random() < 0.6 else w for w in picked]
        return " ".join(picked)


def conversation(text: Text) -> tuple[list[dict[str, str]], dict[int, str], dict[str, object]]:
    rng = text.rng
    pages = {n: ". ".join(text(12) for _ in range(20)) + "." for n in range(1, 6)}
    messages = []
    for _ in range(4):
        messages.append({"role": "user", "content": text(18) + "?"})
        cited = [rng.randint(1, 5) for _ in range(5)]
        answer = " ".join(f"{text(15, pages[n]).capitalize()} [{n}]." for n in cited)
        messages.append({"role": "assistant", "content": answer})
    metadata = {"tags": text(4).split(), "keywords": text(6).split(),
                "summary": text(12).capitalize() + ". " + text(12).capitalize() + "."}  # fmt: skip
    return messages, pages, metadata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=10_000)
    args = parser.parse_args()
    text = Text(random.Random(0))
    made = [conversation(text) for _ in range(args.conversations)]
    started = time.process_time()
    for messages, pages, metadata in made:
        check(messages, pages, metadata)
    total = time.process_time() - started
    rate = args.conversations / total
    # where the time goes: each check on views whose shared parts (tokens, n-grams) are already worked out
    views = [View(*conversation) for conversation in made]
    shared = time.process_time()
    for view in views:
        for i in range(len(view.messages)):
            view.grams(i, 3), view.grams(i, 5)
        view.page_text, view.page_vocabulary, view.said  # noqa: B018 - worked out once, cached on the view
        for n in view.pages:
            view.page_words(n)
    per_check = {"tokens, n-grams, content words": time.process_time() - shared}
    for c in CHECKS:
        t = time.process_time()
        for view in views:
            c.run(view)
        per_check[c.name] = time.process_time() - t
    print(f"quality checks: {args.conversations:,} conversations (8 turns, 5 pages each), one core")
    print(f"  {rate:,.0f} conversations/s of CPU (target ≥ 2,000/s); {1000 / rate:.2f} ms a conversation")
    for name, seconds in per_check.items():
        print(f"  {name:<31} {seconds / args.conversations * 1000:.3f} ms a conversation")


if __name__ == "__main__":
    main()
