"""Near-duplicate pages, flagged with MinHash LSH (rensa, in Rust): word 3-gram shingles, 64
permutations, estimated Jaccard >= 0.8. The signature is computed in the extraction worker (CPU work
off the event loop) and travels back pickled; the crawl keeps one LSH index and asks it for each page.

rensa rather than datasketch: datasketch hashes each shingle with SHA-1 in a Python loop, ~1 ms of a
worker's CPU per page (a fifth of trafilatura's own time); rensa's update takes ~0.01 ms.
"""

from __future__ import annotations

import re

from rensa import RMinHash, RMinHashLSH

NUM_PERM = 64  # plenty for a 0.8 threshold
BANDS = 16  # 4 rows a band: a pair at 0.8 is a candidate with p = 0.9998, then checked exactly
SEED = 20261126  # fixed, so signatures made in a worker process compare with each other here
THRESHOLD = 0.8
_WORD = re.compile(r"\w+", re.UNICODE)


def signature(text: str) -> RMinHash | None:
    """MinHash of the text's word 3-grams, or None for a text too short to compare."""
    words = _WORD.findall(text.lower())
    if len(words) < 20:
        return None
    mh = RMinHash(num_perm=NUM_PERM, seed=SEED)
    mh.update([f"{a} {b} {c}" for a, b, c in zip(words, words[1:], words[2:], strict=False)])
    return mh


class NearDuplicates:
    def __init__(self, threshold: float = THRESHOLD):
        self.threshold = threshold
        self._lsh = RMinHashLSH(threshold=threshold, num_perm=NUM_PERM, num_bands=BANDS)
        self._pages: list[tuple[str, RMinHash]] = []  # LSH keys are ints: their index here

    def check_and_add(self, page_id: str, mh: RMinHash | None) -> tuple[str, float] | None:
        """(page_id, similarity) of an earlier near-duplicate, else None; the page joins the index."""
        if mh is None:
            return None
        best: tuple[str, float] | None = None
        for key in self._lsh.query(mh):
            other_id, other = self._pages[key]
            similarity = other.jaccard(mh)
            if similarity >= self.threshold and (best is None or similarity > best[1]):
                best = (other_id, similarity)
        self._lsh.insert(len(self._pages), mh)
        self._pages.append((page_id, mh))
        return best
