"""The inline quality checks over many conversations, on one core.

Each conversation is made like a swarm's: four user turns and four cited assistant answers of about
80 words (most words of a cited sentence from its page), five source pages of about 1,500 characters
each, and the default recipe's metadata. Words are drawn, as often as they occur there, from the
bundled sample site's articles (English: CLD2 places every turn in the recipe's language and fastText is
asked about none, as for any conversation in the recipe's language). The checks run one conversation
after another in this process (one core), as `swarm run` runs them after each conversation.

A page's words are worked out once (agents/quality/checks.py `prepare`) and reused by every
conversation that reads it. The figures: the checks of a conversation whose pages were read before
(the pages drawn from a pool of 200, as a run's conversations share their pages), the cost of a
page's first reading, and the rate when every page of every conversation is new (the worst case).

    python benchmarks/quality_speed.py                 # 10,000 conversations
    python benchmarks/quality_speed.py --conversations 2000 --passes 1
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import random
import re
import time
from pathlib import Path

from agents.quality import CHECKS, check
from agents.quality.checks import View, prepare

SITE = Path(__file__).resolve().parent.parent / "agents" / "sample_site" / "articles.jsonl"


def vocabulary() -> collections.Counter[str]:
    """The words of the bundled site's articles, with how often each occurs."""
    words: collections.Counter[str] = collections.Counter()
    for line in SITE.read_text(encoding="utf-8").splitlines():
        article = json.loads(line)
        words.update(re.findall(r"[a-z']+", " ".join([article["title"], *article["paragraphs"]]).lower()))
    return words


class Text:
    def __init__(self, rng: random.Random) -> None:
        counts = vocabulary()
        self.rng, self.words, self.weights = rng, list(counts), list(counts.values())

    def __call__(self, n: int, source: str | None = None) -> str:
        """n words; with `source`, about 60 % of them taken from it (an answer drawing on its page)."""
        picked = self.rng.choices(self.words, self.weights, k=n)
        if source:
            from_page = source.split()
            picked = [self.rng.choice(from_page) if self.rng.random() < 0.6 else w for w in picked]
        return " ".join(picked)


def page(text: Text) -> str:
    return ". ".join(text(12) for _ in range(20)) + "."


def conversation(text: Text, pool: list[str] | None) -> tuple[list[dict[str, str]], dict[int, str], dict[str, object]]:
    rng = text.rng
    pages = {n: rng.choice(pool) if pool else page(text) for n in range(1, 6)}
    messages = []
    for _ in range(4):
        messages.append({"role": "user", "content": text(18) + "?"})
        cited = [rng.randint(1, 5) for _ in range(5)]
        answer = " ".join(f"{text(15, pages[n]).capitalize()} [{n}]." for n in cited)
        messages.append({"role": "assistant", "content": answer})
    metadata: dict[str, object] = {"tags": text(4).split(), "keywords": text(6).split(),
                "summary": text(12).capitalize() + ". " + text(12).capitalize() + "."}  # fmt: skip
    return messages, pages, metadata


PERSONA = "A night-shift nurse who cooks soups in batches."
Made = list[tuple[list[dict[str, str]], dict[int, str], dict[str, object]]]


def rate(made: Made) -> float:
    started = time.process_time()
    for messages, pages, metadata in made:
        check(messages, pages, metadata, persona=PERSONA, language="en")
    return len(made) / (time.process_time() - started)


def breakdown(made: Made) -> dict[str, float]:
    """CPU seconds of each part: the view (tokens), what several checks share (word n-grams, sentences,
    content words), then each check, a hundred views at a time. Views that live on make Python's garbage
    collector walk the conversations made for the benchmark (check() lets each go at once): they are
    frozen out of its walk meanwhile."""
    gc.freeze()
    parts: collections.defaultdict[str, float] = collections.defaultdict(float)
    for start in range(0, len(made), 100):
        t = time.process_time()
        views = [View(*one, persona=PERSONA, language="en") for one in made[start : start + 100]]
        parts["tokens (the view)"] += time.process_time() - t
        t = time.process_time()
        for view in views:
            for i, m in enumerate(view.messages):
                view.gram_set(i)  # every turn's word 3-grams; a user turn's 5-grams as well (echo compares them)
                if m["role"] == "user":
                    view.five_grams(i)
            view.words, view.said, view.persona_grams  # noqa: B018 - worked out once, cached on the view
        parts["n-grams, sentences, words"] += time.process_time() - t
        for c in CHECKS:
            t = time.process_time()
            for view in views:
                c.run(view)
            parts[c.name] += time.process_time() - t
    gc.unfreeze()
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--passes", type=int, default=5, help="passes over them; the median is the figure")
    args = parser.parse_args()
    text = Text(random.Random(0))
    check([{"role": "user", "content": "warm up"}], {}, None, language="en")  # loads the language model (~1 s)
    pool = [page(text) for _ in range(200)]
    started = time.process_time()
    for p in pool:
        prepare(p)
    first_reading = (time.process_time() - started) / len(pool)
    made = [conversation(text, pool) for _ in range(args.conversations)]
    rates = sorted(rate(made) for _ in range(args.passes))
    shared = rates[len(rates) // 2]
    cold = rate([conversation(text, None) for _ in range(max(1, args.conversations // 5))])
    per_part = breakdown(made)
    verdict = "met" if shared >= 2000 else "not met"
    print(f"quality checks: {args.conversations:,} conversations (8 turns, 5 pages each), one core")
    print(
        f"  {shared:,.0f} conversations/s of CPU, pages read before: median of {args.passes} passes "
        f"({', '.join(f'{r:,.0f}' for r in rates)}); target ≥ 2,000/s: {verdict}"
    )
    print(f"  {1000 / shared:.2f} ms a conversation")  # fmt: skip
    print(f"  a page's first reading: {first_reading * 1000:.3f} ms (once a page, whichever conversations read it)")
    print(f"  {cold:,.0f} conversations/s when every page is new (worst case: 5 first readings each)")
    print(f"  where the time goes ({sum(per_part.values()) / args.conversations * 1000:.2f} ms in all, timed apart):")
    for name, seconds in per_part.items():
        print(f"    {name:<26} {seconds / args.conversations * 1000:.3f} ms a conversation")


if __name__ == "__main__":
    main()
