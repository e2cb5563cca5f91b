"""Near-duplicate removal as PersonaHub deduplicated its personas: MinHash of word 1-grams, 128
permutations, Jaccard threshold 0.9 (`storage.minhash.PERSONAS`).

Personas already in the hub win over new ones, and earlier lines win over later ones. A removed
persona is not lost: it is stored in `import_rejects` with reason `near_duplicate` and the id of the
persona it matched.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from persona_hub.errors import RejectReason
from storage import minhash
from storage.minhash import NearDuplicates


def remove_near_duplicates(con: duckdb.DuckDBPyConnection, import_id: str, source: str) -> int:
    """Drop rows of the temp table `_new` that nearly duplicate the hub or an earlier row; return how many."""
    index: NearDuplicates[str] = NearDuplicates(minhash.PERSONAS)
    for pid, text in con.execute("SELECT persona_id, text FROM personas").fetchall():
        index.add(pid, minhash.signature(text, minhash.PERSONAS))
    dropped: list[tuple[int, str]] = []
    for line, text in con.execute("SELECT line, text FROM _new ORDER BY line").fetchall():
        mh = minhash.signature(text, minhash.PERSONAS)
        match = index.match(mh)
        if match is not None:
            dropped.append((line, match[0]))
        else:
            index.add(f"line:{line}", mh)
    if dropped:
        table = pa.table({"line": [d[0] for d in dropped], "match": [d[1] for d in dropped]})
        con.register("_near", table)
        con.execute(
            """
            INSERT INTO import_rejects
            SELECT ?, ?, n.line, ?,
                   'near-duplicate of ' || CASE WHEN starts_with(n.match, 'line:')
                        THEN 'line ' || substr(n.match, 6) || ' of this file' ELSE n.match END,
                   left(x.text, 500)
            FROM _near n JOIN _new x USING (line)
            """,
            [import_id, source, str(RejectReason.NEAR_DUPLICATE)],
        )
        con.execute("DELETE FROM _new WHERE line IN (SELECT line FROM _near)")
        con.unregister("_near")
    return len(dropped)
