"""Near-duplicate removal as PersonaHub deduplicated its personas: MinHash of word 1-grams, 128
permutations, Jaccard similarity 0.9 (`storage.minhash.PERSONAS`) — against a persisted index, in batches.

The index, `persona_minhash`, holds each indexed persona's LSH band keys: 10 bands of 12 of its MinHash
values (120 of 128). Two personas sharing a band key are candidates, and candidates are then compared
exactly: the Jaccard similarity of their word sets, at least 0.9. With bands of 12 a pair at 0.9 is a
candidate with p = 0.96 and at 0.95 with p > 0.999, while two unrelated personas sharing a fifth of
their words (function words: "a", "who", "and" …) are with p = 4e-8; bands of 8 (p ≥ 0.99 at 0.9)
let 3,000 times as many of those through, which at millions of personas is more pairs than can be
checked. Only the first `FIRST` personas of a band key (the earliest) are compared with the others
sharing it, so a key shared by thousands costs a few comparisons a persona.

Older personas win over new ones, and earlier lines over later ones (files in the order given); a
persona near only an earlier one that was itself removed is kept. A removed persona is not lost: it
is in `import_rejects` with reason `near_duplicate` and what it matched. Kept personas join the index;
personas imported without `--dedup near` are added the next time it runs. Nothing hub-sized is held
in memory: texts are read, hashed and written back in batches of `BATCH`.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context

import duckdb
import numpy as np
import pyarrow as pa
from rensa import RMinHash

from persona_hub.errors import RejectReason
from storage import minhash
from storage.sql import quote

BANDS, ROWS = 10, 12  # the columns b0 … b9 of persona_minhash
BATCH = 100_000
FIRST = 8  # others a persona is compared with per shared band key
_KEYS = ", ".join(f"b{b}" for b in range(BANDS))
_KEY_COLUMNS = ", ".join(f"b{b} UBIGINT" for b in range(BANDS))
_SHINGLING = minhash.PERSONAS


def band_keys(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(which texts have words, their band keys: one row of BANDS uint64 per such text)."""
    grams = [minhash.shingles(text, _SHINGLING) for text in texts]
    has_words = np.fromiter((bool(g) for g in grams), bool, len(grams))
    kept = [g for g in grams if g]
    if not kept:
        return has_words, np.zeros((0, BANDS), np.uint64)
    matrix = RMinHash.digest_matrix_from_token_sets(kept, _SHINGLING.num_perm, minhash.SEED)
    values = np.array(matrix.to_rows(), np.uint64)[:, : BANDS * ROWS].reshape(len(kept), BANDS, ROWS)
    keys = np.zeros((len(kept), BANDS), np.uint64)
    for row in range(ROWS):  # a polynomial hash of each band's values, modulo 2^64
        keys = keys * np.uint64(0x100000001B3) + values[:, :, row]
    return has_words, keys


Batch = tuple[pa.Array, list[str]]  # keys and texts


def _index(con: duckdb.DuckDBPyConnection, table: str, batches: Iterator[Batch]) -> int:
    """Append the band keys of each batch's texts, each after its key, to `table` (a text without words
    has none); return how many texts there were. Hashing is most of the work: with more than one batch
    it runs in worker processes, one a core, while this one writes."""
    count = 0
    for key, (has_words, keys) in _keyed(batches):
        columns = {"key": key.filter(pa.array(has_words))}
        columns.update({f"b{b}": pa.array(keys[:, b]) for b in range(BANDS)})
        con.register("_keys", pa.table(columns))
        con.execute(f"INSERT INTO {table} SELECT key, {_KEYS} FROM _keys")
        con.unregister("_keys")
        count += len(has_words)
    return count


def _keyed(batches: Iterator[Batch]) -> Iterator[tuple[pa.Array, tuple[np.ndarray, np.ndarray]]]:
    first = next(batches, None)
    if first is None:
        return
    second = next(batches, None)
    if second is None:
        yield first[0], band_keys(first[1])
        return
    workers = max(1, min(os.cpu_count() or 1, 4))
    # spawned, not forked: this process runs DuckDB's threads
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        pending: deque[tuple[pa.Array, Future[tuple[np.ndarray, np.ndarray]]]] = deque()
        for key, texts in (first, second, *batches):
            pending.append((key, pool.submit(band_keys, texts)))
            if len(pending) > workers:
                done_key, done = pending.popleft()
                yield done_key, done.result()
        while pending:
            done_key, done = pending.popleft()
            yield done_key, done.result()


def _index_hub(con: duckdb.DuckDBPyConnection, import_id: str) -> int:
    """Add the personas not in the index (but this import's) to it; return how many there were."""
    reader = con.cursor()  # reads what is committed, while `con` writes in its transaction
    batches = reader.sql(
        f"""SELECT rowid, text FROM personas WHERE import_id <> {quote(import_id)}
            AND text_hash NOT IN (SELECT text_hash FROM persona_minhash)"""
    ).to_arrow_reader(BATCH)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _hub_keys (row BIGINT, {_KEY_COLUMNS})")
    added = _index(con, "_hub_keys", ((b.column(0), b.column(1).to_pylist()) for b in batches))
    reader.close()
    hub_keys = f"SELECT p.text_hash, {_KEYS} FROM _hub_keys JOIN personas p ON p.rowid = _hub_keys.row"
    con.execute(f"INSERT INTO persona_minhash {hub_keys}")
    con.execute("DROP TABLE _hub_keys")
    return added


def remove_near_duplicates(con: duckdb.DuckDBPyConnection, import_id: str, paths: list[str]) -> dict[str, int]:
    """Add this import's near duplicates (but exact copies: `_copies`) to `_copies`, with a reject each,
    and its other personas to the index; return the near duplicates per file."""
    _index_hub(con, import_id)
    position = " ".join(f"WHEN {quote(p)} THEN {i}" for i, p in reversed(list(enumerate(paths))))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _near_new AS
            SELECT row_number() OVER (ORDER BY CASE source {position} END, source_line) AS i,
                   source, source_line, text_hash, text
            FROM personas ANTI JOIN _copies USING (source, source_line)
            WHERE import_id = {quote(import_id)}"""
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _near_keys (i BIGINT, {_KEY_COLUMNS})")
    total = con.execute("SELECT count(*) FROM _near_new").fetchall()[0][0]

    def new_rows() -> Iterator[Batch]:
        for start in range(1, total + 1, BATCH):
            rows = con.sql(f"SELECT i, text FROM _near_new WHERE i >= {start} AND i < {start + BATCH}").to_arrow_table()
            yield rows.column("i").combine_chunks(), rows.column("text").to_pylist()

    _index(con, "_near_keys", new_rows())
    removed = _decide(con)
    _record(con, import_id, removed)
    con.register("_removed", pa.table({"i": pa.array(list(removed), pa.int64())}))
    con.execute(
        f"""INSERT INTO persona_minhash SELECT n.text_hash, {_KEYS}
            FROM _near_keys JOIN _near_new n USING (i) WHERE i NOT IN (SELECT i FROM _removed)"""
    )
    counts = dict(
        con.execute(
            "SELECT source, count(*) FROM _near_new WHERE i IN (SELECT i FROM _removed) GROUP BY ALL"
        ).fetchall()
    )
    con.execute("INSERT INTO _copies SELECT source, source_line FROM _near_new WHERE i IN (SELECT i FROM _removed)")
    con.unregister("_removed")
    con.execute("DROP TABLE _near_new; DROP TABLE _near_keys; DROP TABLE _near_candidates")
    return {str(k): int(v) for k, v in counts.items()}


def _decide(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[str | None, int | None]]:
    """The new personas (by `i`) that nearly copy an older one (its id) or an earlier kept new one
    (its `i`), from the candidates sharing a band key, compared exactly."""
    # Only the first FIRST personas of each band key take part, so that a key thousands share (a
    # file of one text reworded) costs a few comparisons a persona, not one with each of the others.
    # One band at a time: ranking every band's keys in one statement took more than DuckDB's 3 GB.
    con.execute("CREATE OR REPLACE TEMP TABLE _near_candidates (i BIGINT, other_hash UHUGEINT, other_i BIGINT)")
    for b in range(BANDS):
        con.execute(
            f"""INSERT INTO _near_candidates SELECT k.i, o.text_hash, NULL FROM _near_keys k JOIN (
                    SELECT text_hash, b{b} FROM persona_minhash WHERE b{b} IN (SELECT b{b} FROM _near_keys)
                    QUALIFY row_number() OVER (PARTITION BY b{b} ORDER BY text_hash) <= {FIRST}) o USING (b{b})"""
        )
        con.execute(
            f"""INSERT INTO _near_candidates SELECT k.i, NULL, e.i FROM _near_keys k JOIN (
                    SELECT i, b{b} FROM _near_keys QUALIFY row_number() OVER (PARTITION BY b{b} ORDER BY i) <= {FIRST}
                ) e ON k.b{b} = e.b{b} AND e.i < k.i"""
        )
    pairs = con.execute(
        """SELECT c.i, c.other_i, n.text, p.persona_id, p.text AS other_text, e.text AS earlier_text
           FROM (SELECT DISTINCT * FROM _near_candidates) c JOIN _near_new n USING (i)
           LEFT JOIN (SELECT DISTINCT ON (text_hash) text_hash, persona_id, text FROM personas
                      WHERE text_hash IN (SELECT other_hash FROM _near_candidates)
                      ORDER BY text_hash, persona_id) p ON p.text_hash = c.other_hash
           LEFT JOIN _near_new e ON e.i = c.other_i
           ORDER BY c.i, c.other_i NULLS FIRST, p.persona_id"""
    )
    removed: dict[int, tuple[str | None, int | None]] = {}
    threshold = _SHINGLING.threshold
    while chunk := pairs.fetchmany(10_000):  # in order: an earlier persona is decided before a later one
        for i, other_i, text, other_id, other_text, earlier_text in chunk:
            if i in removed or (other_i is not None and other_i in removed):
                continue
            if _jaccard(text, other_text if other_i is None else earlier_text) >= threshold:
                removed[i] = (other_id, other_i)
    return removed


def _jaccard(a: str | None, b: str | None) -> float:
    words_a, words_b = set(minhash.shingles(a or "", _SHINGLING)), set(minhash.shingles(b or "", _SHINGLING))
    if not words_a or not words_b:
        return 0.0
    return len(words_a & words_b) / len(words_a | words_b)


def _record(con: duckdb.DuckDBPyConnection, import_id: str, removed: dict[int, tuple[str | None, int | None]]) -> None:
    """A reject for each removed persona, naming what it matched."""
    if not removed:
        return
    matches = pa.table(
        {
            "i": pa.array(list(removed), pa.int64()),
            "other_id": pa.array([m[0] for m in removed.values()], pa.string()),
            "other_i": pa.array([m[1] for m in removed.values()], pa.int64()),
        }
    )
    con.register("_matches", matches)
    con.execute(
        f"""
        INSERT INTO import_rejects
        SELECT {quote(import_id)}, n.source, n.source_line, {quote(RejectReason.NEAR_DUPLICATE)},
               'near-duplicate of ' || CASE WHEN m.other_i IS NULL THEN m.other_id
                    WHEN e.source = n.source THEN 'line ' || e.source_line || ' of this file'
                    ELSE 'line ' || e.source_line || ' of ' || e.source END,
               left(n.text, 500)
        FROM _matches m JOIN _near_new n USING (i) LEFT JOIN _near_new e ON e.i = m.other_i
        """
    )
    con.unregister("_matches")
