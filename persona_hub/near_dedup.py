"""Near-duplicate removal with MinHash LSH (rensa, in Rust), as PersonaHub deduplicated its personas:
word 1-gram shingles, 128 permutations, Jaccard threshold 0.9.

Personas already in the hub win over new ones, and earlier lines win over later ones. A removed
persona is not lost: it is stored in `import_rejects` with reason `near_duplicate` and the id of the
persona it matched.
"""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa
from rensa import RMinHash, RMinHashLSH

NUM_PERM = 128
BANDS = 16  # 8 rows a band: a pair at 0.9 is a candidate with p = 0.9999, at 0.5 with p = 0.06
SEED = 20261126
THRESHOLD = 0.9
_WORD = re.compile(r"\w+", re.UNICODE)


def _minhash(text: str) -> RMinHash:
    mh = RMinHash(num_perm=NUM_PERM, seed=SEED)
    mh.update(_WORD.findall(text.lower()))
    return mh


def remove_near_duplicates(con: duckdb.DuckDBPyConnection, import_id: str, source: str) -> int:
    """Drop rows of the temp table `_new` that nearly duplicate the hub or an earlier row; return how many."""
    lsh = RMinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, num_bands=BANDS)
    kept: list[tuple[str, RMinHash]] = []  # LSH keys are ints: their index here

    def keep(name: str, mh: RMinHash) -> None:
        lsh.insert(len(kept), mh)
        kept.append((name, mh))

    for pid, text in con.execute("SELECT persona_id, text FROM personas").fetchall():
        keep(pid, _minhash(text))
    dropped: list[tuple[int, str]] = []
    for line, text in con.execute("SELECT line, text FROM _new ORDER BY line").fetchall():
        mh = _minhash(text)
        match = next((kept[k][0] for k in lsh.query(mh) if kept[k][1].jaccard(mh) >= THRESHOLD), None)
        if match is not None:
            dropped.append((line, match))
            continue
        keep(f"line:{line}", mh)
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
