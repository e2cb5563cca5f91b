"""Near-duplicate text by MinHash LSH (rensa, in Rust): the one implementation behind persona near-dedup,
page duplicate flags and export dedup, each with its own `Shingling`.

It lives in `storage` because that is the one package the other three may all import (`crawler` and
`persona_hub` never import each other), and what it compares is stored text.

rensa rather than datasketch: datasketch hashes each shingle with SHA-1 in a Python loop, ~1 ms of CPU a
page (a fifth of trafilatura's own time); rensa's update takes ~0.01 ms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

from rensa import RMinHash, RMinHashLSH

SEED = 20261126  # fixed, so signatures made in another process (the extraction workers) compare here
_WORD = re.compile(r"\w+", re.UNICODE)
K = TypeVar("K")


@dataclass(frozen=True)
class Shingling:
    """How texts are compared: word n-grams of the lower-cased text, `num_perm` permutations, and the
    estimated Jaccard similarity from which two texts count as near-duplicates."""

    ngram: int
    num_perm: int
    threshold: float
    min_words: int = 0  # shorter texts get no signature: too little to compare

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError(f"a near-duplicate threshold is in (0, 1], not {self.threshold}")

    def with_threshold(self, threshold: float) -> Shingling:
        return Shingling(self.ngram, self.num_perm, threshold, self.min_words)

    @property
    def bands(self) -> int:
        """The fewest LSH bands (so the fewest false candidates, each checked exactly after) that still
        make a pair at the threshold a candidate with p >= 0.99."""
        for rows in (16, 8, 4, 2, 1):
            bands = self.num_perm // rows
            if self.num_perm % rows == 0 and 1 - (1 - self.threshold**rows) ** bands >= 0.99:
                return bands
        return self.num_perm


# PersonaHub deduplicated its personas with 1-gram shingles, 128 permutations and threshold 0.9.
PERSONAS = Shingling(ngram=1, num_perm=128, threshold=0.9)
# Pages and conversations: word 3-grams keep "same words, other order" apart; 64 permutations are
# plenty for 0.8, and a page of fewer than 20 words is not worth flagging.
PAGES = Shingling(ngram=3, num_perm=64, threshold=0.8, min_words=20)
CONVERSATIONS = Shingling(ngram=3, num_perm=128, threshold=0.9)  # `swarm export --dedup --threshold` changes it


def shingles(text: str, shingling: Shingling) -> list[str]:
    """The word n-grams of the lower-cased text that its MinHash is made of (none for a text shorter
    than `shingling.min_words`, or without a word)."""
    words: list[str] = _WORD.findall(text.lower())
    if len(words) < max(shingling.min_words, 1):
        return []
    n = min(shingling.ngram, len(words))
    if n == 1:
        return words  # joining each word to itself cost as much as finding the words
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def signature(text: str, shingling: Shingling) -> RMinHash | None:
    """The text's MinHash, or None for a text shorter than `shingling.min_words`."""
    grams = shingles(text, shingling)
    if not grams:
        return None
    mh = RMinHash(num_perm=shingling.num_perm, seed=SEED)
    mh.update(grams)
    return mh


class NearDuplicates(Generic[K]):
    """An LSH index of signatures under keys; `match` finds the most similar earlier text."""

    def __init__(self, shingling: Shingling):
        self.shingling = shingling
        self._lsh = RMinHashLSH(threshold=shingling.threshold, num_perm=shingling.num_perm, num_bands=shingling.bands)
        self._entries: list[tuple[K, RMinHash]] = []  # LSH keys are ints: their index here

    def match(self, mh: RMinHash | None) -> tuple[K, float] | None:
        """(key, similarity) of the most similar text added before, at or above the threshold; else None."""
        if mh is None:
            return None
        best: tuple[K, float] | None = None
        for index in self._lsh.query(mh):
            key, other = self._entries[index]
            similarity = other.jaccard(mh)
            if similarity >= self.shingling.threshold and (best is None or similarity > best[1]):
                best = (key, similarity)
        return best

    def add(self, key: K, mh: RMinHash | None) -> None:
        if mh is not None:
            self._lsh.insert(len(self._entries), mh)
            self._entries.append((key, mh))
