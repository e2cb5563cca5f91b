"""Near-duplicate pages, flagged with MinHash LSH (datasketch): word 3-gram shingles, 128 permutations,
estimated Jaccard >= 0.8. The signature is computed in the extraction worker (CPU work off the event
loop); the crawl keeps one LSH index and asks it for each new page.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np
from datasketch import MinHash, MinHashLSH

NUM_PERM = 64  # plenty for a 0.8 threshold, and half the cost of 128 per page
THRESHOLD = 0.8
SCHEME = "affine32"  # named, so signatures made in a worker process rebuild the same way here
_WORD = re.compile(r"\w+", re.UNICODE)


@functools.cache
def _permutations() -> Any:
    """The permutations every MinHash here shares (datasketch would draw them again for each one)."""
    return MinHash(num_perm=NUM_PERM, scheme=SCHEME).permutations


def signature(text: str) -> list[int] | None:
    """MinHash values of the text's word 3-grams, or None for a text too short to compare."""
    words = _WORD.findall(text.lower())
    if len(words) < 20:
        return None
    shingles = {" ".join(words[i : i + 3]).encode("utf-8") for i in range(len(words) - 2)}
    mh = MinHash(num_perm=NUM_PERM, scheme=SCHEME, permutations=_permutations())
    mh.update_batch(list(shingles))
    return [int(v) for v in mh.hashvalues]


class NearDuplicates:
    def __init__(self, threshold: float = THRESHOLD):
        self.threshold = threshold
        self._lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self._seen: dict[str, MinHash] = {}

    def check_and_add(self, page_id: str, values: list[int] | None) -> tuple[str, float] | None:
        """(page_id, similarity) of an earlier near-duplicate, else None; the page joins the index."""
        if values is None:
            return None
        mh = MinHash(
            num_perm=NUM_PERM, hashvalues=np.array(values, dtype=np.uint64), scheme=SCHEME, permutations=_permutations()
        )
        best: tuple[str, float] | None = None
        for other in self._lsh.query(mh):
            similarity = self._seen[other].jaccard(mh)
            if similarity >= self.threshold and (best is None or similarity > best[1]):
                best = (other, similarity)
        self._lsh.insert(page_id, mh)
        self._seen[page_id] = mh
        return best
