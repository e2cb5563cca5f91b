"""Near-duplicate removal with MinHash LSH (datasketch), as PersonaHub deduplicated its personas:
word 1-gram shingles, 128 permutations, Jaccard threshold 0.9.

Personas already in the hub win over new ones, and earlier lines win over later ones. A removed
persona is not lost: it is stored in `import_rejects` with reason `near_duplicate` and the id of the
persona it matched.
"""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa
from datasketch import MinHash, MinHashLSH

NUM_PERM = 128
THRESHOLD = 0.9
_WORD = re.compile(r"\w+", re.UNICODE)


def shingles(text: str) -> set[bytes]:
    return {w.encode("utf-8") for w in _WORD.findall(text.lower())}


def _minhashes(texts: list[str]) -> list[MinHash]:
    return list(MinHash.bulk([shingles(t) for t in texts], num_perm=NUM_PERM))


def remove_near_duplicates(con: duckdb.DuckDBPyConnection, import_id: str, source: str) -> int:
    """Drop rows of the temp table `_new` that nearly duplicate the hub or an earlier row; return how many."""
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    signatures: dict[str, MinHash] = {}
    existing = con.execute("SELECT persona_id, text FROM personas").fetchall()
    for (pid, _), mh in zip(existing, _minhashes([t for _, t in existing]), strict=True):
        lsh.insert(pid, mh)
        signatures[pid] = mh
    new = con.execute("SELECT line, text FROM _new ORDER BY line").fetchall()
    dropped: list[tuple[int, str]] = []
    for (line, _), mh in zip(new, _minhashes([t for _, t in new]), strict=True):
        match = next((key for key in lsh.query(mh) if signatures[key].jaccard(mh) >= THRESHOLD), None)
        if match is not None:
            dropped.append((line, match))
            continue
        key = f"line:{line}"
        lsh.insert(key, mh)
        signatures[key] = mh
    if dropped:
        table = pa.table({"line": [d[0] for d in dropped], "match": [d[1] for d in dropped]})
        con.register("_near", table)
        con.execute(
            """
            INSERT INTO import_rejects
            SELECT ?, ?, n.line, 'near_duplicate',
                   'near-duplicate of ' || CASE WHEN starts_with(n.match, 'line:')
                        THEN 'line ' || substr(n.match, 6) || ' of this file' ELSE n.match END,
                   left(x.text, 500)
            FROM _near n JOIN _new x USING (line)
            """,
            [import_id, source],
        )
        con.execute("DELETE FROM _new WHERE line IN (SELECT line FROM _near)")
        con.unregister("_near")
    return len(dropped)
