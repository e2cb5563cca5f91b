"""Training-ready files from the conversations table.

    report = export(db, Path("train.jsonl"), "openai", run_id="run_…", where="sentiment = 'positive'")

Formats (EXPORT_FORMATS; a package can add its own, docs/extending.md): `openai` (chat JSONL,
`{"messages": [...]}`, what OpenAI's fine-tuning and most trainers take), `sharegpt` (`{"conversations":
[{"from": "human"|"gpt"|"system", "value": …}]}`, what Axolotl, LLaMA-Factory and FastChat take) and
`parquet` (one row per conversation with the metadata as typed columns and the persona beside it). All
three load in Hugging Face `datasets` as they are.

`--where` is SQL over the export's own columns (see EXPORT_COLUMNS): the conversation's, the persona's
and the metadata's fields flattened, so filters read naturally: `sentiment = 'positive' AND turns >= 3`,
`list_contains(tags, 'sleep')`, `persona_attributes->>'country' = 'Chile'`, `scores['support'] >= 0.8`.

By default only conversations that passed every blocking quality check are written (docs/quality.md):
`include_all` writes the rest too; `min_scores` ({"support": 0.8}) asks more of a check or a judge.
Parquet carries every score (`quality`, `quality_passed`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from agents import recipes
from agents.quality import CHECKS
from agents.recipes import Recipe
from storage import Database, check_read_only, filter_expression, minhash
from storage.errors import StorageError
from storage.minhash import NearDuplicates
from storage.registry import Registry, UnknownName
from storage.sql import fetch_dicts, ident, json_key_path, quote

_ROWS = """
SELECT c.conversation_id, c.run_id, c.persona_id, c.cycle,
       CAST(c.messages AS VARCHAR) AS messages_json,
       json_array_length(c.messages) AS messages_count,
       CAST(json_array_length(c.messages) // 2 AS INTEGER) AS turns,
       c.termination_reason, coalesce(c.status, 'complete') AS status,
       CAST(c.failed_steps AS VARCHAR) AS failed_steps_json, CAST(c.sources AS VARCHAR) AS sources_json,
       CAST(c.queries AS VARCHAR) AS queries_json, CAST(c.variations AS VARCHAR) AS variations_json,
       CAST(c.prompt_versions AS VARCHAR) AS prompt_versions_json, CAST(c.outputs AS VARCHAR) AS outputs_json,
       c.next_question, c.recipe_hash, c.created_at,
       p.text AS persona, p.attributes AS persona_attributes,
       q.quality_passed, q.scores, q.quality_json{outputs}
FROM conversations c LEFT JOIN personas p USING (persona_id) LEFT JOIN (
    -- the checks (and judges) of each conversation: passed when every blocking one passed; NULL until every
    -- check ran (a run from before the checks, one with --no-checks, one whose pages are not known)
    SELECT conversation_id, CASE WHEN count(DISTINCT check_name) FILTER (WHERE list_contains({checks}, check_name))
                                      < {check_count} THEN NULL
                                 ELSE bool_and(passed) FILTER (WHERE blocking) END AS quality_passed,
           map_from_entries(list({{'key': check_name, 'value': score}} ORDER BY check_name)) AS scores,
           CAST(to_json(list({{'check': check_name, 'score': score, 'passed': passed, 'blocking': blocking}}
                             ORDER BY check_name)) AS VARCHAR) AS quality_json
    FROM quality GROUP BY conversation_id
) q USING (conversation_id)
"""
# and a column for each field of the structured steps of the recipes the runs followed (output_columns)
EXPORT_COLUMNS = [
    "conversation_id", "run_id", "persona_id", "cycle", "turns", "messages_count", "termination_reason", "status",
    "next_question", "recipe_hash", "created_at", "persona", "persona_attributes", "quality_passed", "scores",
]  # fmt: skip
_SQL_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN", "list": "VARCHAR[]"}


@dataclass(frozen=True)
class OutputColumn:
    """A column flattened from a structured step's output field: `outputs.metadata.sentiment` → sentiment."""

    name: str
    step: str
    field: str
    type: str  # the recipe's field type: string, integer, number, boolean, list

    def sql(self) -> str:
        path = f"{json_key_path(self.step)}.{json.dumps(self.field)}"
        if self.type == "list":
            return f"CAST(json_extract_string(c.outputs, {quote(path + '[*]')}) AS VARCHAR[]) AS {ident(self.name)}"
        text = f"json_extract_string(c.outputs, {quote(path)})"
        if self.type != "string":
            text = f"TRY_CAST({text} AS {_SQL_TYPES[self.type]})"
        return f"{text} AS {ident(self.name)}"


def output_columns(recipes: list[Recipe]) -> list[OutputColumn]:
    """A column for each field of each exported step (the structured ones) of these recipes, named as the
    field; a name already taken (by a base column, or another step's field of another type) is
    prefixed with its step's name."""
    columns: dict[str, OutputColumn] = {}
    for recipe in recipes:
        for step in recipe.steps:
            prompt = step.prompts.get("")
            if not step.exported or prompt is None or prompt.spec.output is None:
                continue
            for name, spec in prompt.spec.output.fields.items():
                column = OutputColumn(name, step.name, name, spec.type)
                same = columns.get(name)
                if same == column:
                    continue
                if name in EXPORT_COLUMNS or same is not None:
                    column = OutputColumn(f"{step.name}_{name}", step.name, name, spec.type)
                columns.setdefault(column.name, column)
    return list(columns.values())


def _recipes(con: duckdb.DuckDBPyConnection, run_id: str | None) -> list[Recipe]:
    """The recipes the selected runs followed (a run from before recipes: the default)."""
    sql = "SELECT DISTINCT recipe FROM runs" + (" WHERE run_id = ?" if run_id else "")
    texts = [text for (text,) in con.execute(sql, [run_id] if run_id else []).fetchall()]
    found: dict[str, Recipe] = {}
    if not texts or None in texts:  # no run yet, or one from before recipes
        found[recipes.default().hash] = recipes.default()
    for text in texts:
        if text and recipes.text_hash(text) not in found:
            try:
                recipe = recipes.parse(text, "a stored run's recipe")
            except recipes.RecipeError:
                continue  # a recipe this version cannot read: its outputs stay in outputs_json
            found[recipe.hash] = recipe
    return list(found.values())


def _partial_kept(row: dict[str, Any]) -> bool:
    """A partial conversation asked for (--include-partial) whose only failed blocking check is `metadata`:
    it has no metadata because that step failed, which is what partial means."""
    failed = {q["check"] for q in json.loads(row["quality_json"] or "[]") if q["blocking"] and not q["passed"]}
    return row["status"] == "partial" and row["quality_passed"] is False and failed <= {"metadata"}


class ExportError(StorageError):
    """A bad filter, an unknown run or format: the message says what to do."""


@dataclass
class ExportReport:
    path: Path
    fmt: str
    written: int
    matched: int
    near_duplicates: int
    variations: int
    partial_left_out: int = 0  # partial conversations that matched and were left out (no --include-partial)
    failed_left_out: int = 0  # conversations that failed a blocking quality check (no --all)
    unchecked_left_out: int = 0  # conversations not every check ran on (no --all): swarm eval checks them


def _bad_where(where: str, exc: Exception, columns: list[str]) -> ExportError:
    first = str(exc).strip().splitlines()[0]
    return ExportError(
        f"bad {{--where}} ({where!r}): {first}. You can filter on: {', '.join(columns)}; for example "
        "{--where} \"sentiment = 'positive' AND turns >= 2\""
    )


def _min_scores(con: duckdb.DuckDBPyConnection, run_id: str | None, min_scores: dict[str, float]) -> list[str]:
    """`--min-score CHECK=X` as SQL conditions, each check one the selected conversations were scored on."""
    if not min_scores:
        return []
    sql = "SELECT DISTINCT check_name FROM quality" + (" WHERE run_id = ?" if run_id else "") + " ORDER BY 1"
    known = [name for (name,) in con.execute(sql, [run_id] if run_id else []).fetchall()]
    for name in min_scores:
        if name not in known:
            raise ExportError(
                f"{{--min-score}} {name}: no conversation {'of this run ' if run_id else ''}has a score of that name; "
                f"they have: {', '.join(known) or 'none (swarm eval scores them)'}"
            )
    return [f"coalesce(scores[{quote(name)}], -1) >= {float(value)!r}" for name, value in min_scores.items()]


def _select(
    db: Database, run_id: str | None, where: str | None, min_scores: dict[str, float] | None = None
) -> tuple[list[dict[str, Any]], list[OutputColumn]]:
    clauses, params = [], []
    if run_id:
        clauses.append("run_id = ?")
        params.append(run_id)
    with db.read() as con:
        if run_id and not con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0]:
            raise ExportError(f"no run {run_id}: see swarm runs list")
        outputs = output_columns(_recipes(con, run_id))
        names = [*EXPORT_COLUMNS, *(c.name for c in outputs)]
        try:
            condition = filter_expression(where)  # one SQL condition, or refused before any SQL is built
        except StorageError as exc:
            raise _bad_where(where or "", exc, names) from exc
        if condition:
            clauses.append(condition)
        clauses += _min_scores(con, run_id, min_scores or {})
        filters = "WHERE " + " AND ".join(clauses) if clauses else ""
        rows_sql = _ROWS.format(
            outputs="".join(f",\n       {c.sql()}" for c in outputs),
            checks="[" + ", ".join(quote(c.name) for c in CHECKS) + "]",
            check_count=len(CHECKS),
        )
        sql = f"SELECT * FROM ({rows_sql}) {filters} ORDER BY created_at, conversation_id"
        try:
            check_read_only(sql)
            cursor = con.execute(sql, params)
        except (duckdb.Error, StorageError) as exc:
            if not condition:
                raise ExportError(f"reading the conversations failed: {str(exc).strip().splitlines()[0]}") from exc
            raise _bad_where(where or "", exc, names) from exc
        return fetch_dicts(cursor), outputs


def _near_duplicates(rows: list[dict[str, Any]], threshold: float) -> set[str]:
    """Conversations whose user+assistant text is a near copy of one exported before them."""
    index: NearDuplicates[str] = NearDuplicates(minhash.CONVERSATIONS.with_threshold(threshold))
    dropped: set[str] = set()
    for row in rows:
        text = " ".join(m.get("content", "") for m in json.loads(row["messages_json"] or "[]"))
        mh = minhash.signature(text, index.shingling)
        if index.match(mh) is not None:
            dropped.add(row["conversation_id"])
        else:
            index.add(row["conversation_id"], mh)
    return dropped


@dataclass(frozen=True)
class ExportOptions:
    system: str | None = None  # a system message to prepend; "persona" describes the user from the persona text
    variations: bool = False  # each stored variation as a one-turn example too (formats that take examples)
    columns: tuple[OutputColumn, ...] = ()  # the columns flattened from the recipes' structured outputs


# An export format writes the selected rows to `path` and returns how many examples it wrote. A row is
# a dict of the export's columns (EXPORT_COLUMNS and options.columns) plus messages_json, sources_json,
# queries_json, variations_json, prompt_versions_json and outputs_json; `chats(row, options)` gives its
# examples as chat messages.
Exporter = Callable[[list[dict[str, Any]], Path, ExportOptions], int]
EXPORT_FORMATS: Registry[Exporter] = Registry("persona_swarm.exporters", "export format")


def chats(row: dict[str, Any], options: ExportOptions) -> list[list[dict[str, str]]]:
    """The conversation as messages, then (with options.variations) each variation as a one-turn chat."""
    examples = [_chat(row, options.system)]
    if options.variations:
        examples += [
            [{"role": "user", "content": v["prompt"]}, {"role": "assistant", "content": v["response"]}]
            for v in json.loads(row["variations_json"] or "[]") or []
        ]
    return examples


def write_jsonl(
    rows: list[dict[str, Any]],
    path: Path,
    options: ExportOptions,
    record: Callable[[list[dict[str, str]]], dict[str, Any]],
) -> int:
    """One JSON object a line, `record(chat)` for each example; returns how many."""
    written = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            for chat in chats(row, options):
                fh.write(json.dumps(record(chat), ensure_ascii=False) + "\n")
                written += 1
    return written


def _chat(row: dict[str, Any], system: str | None) -> list[dict[str, str]]:
    messages = [{"role": m["role"], "content": m["content"]} for m in json.loads(row["messages_json"] or "[]")]
    if system == "persona" and row.get("persona"):
        return [{"role": "system", "content": f"You are talking with: {row['persona']}"}, *messages]
    if system:
        return [{"role": "system", "content": system}, *messages]
    return messages


_SHAREGPT_ROLE = {"user": "human", "assistant": "gpt", "system": "system"}


@EXPORT_FORMATS.register("openai")
def openai_chat(rows: list[dict[str, Any]], path: Path, options: ExportOptions) -> int:
    """Chat JSONL, `{"messages": [...]}`: what OpenAI's fine-tuning and most trainers take."""
    return write_jsonl(rows, path, options, lambda chat: {"messages": chat})


@EXPORT_FORMATS.register("sharegpt")
def sharegpt(rows: list[dict[str, Any]], path: Path, options: ExportOptions) -> int:
    """`{"conversations": [{"from": "human"|"gpt"|"system", "value": …}]}`: Axolotl, LLaMA-Factory, FastChat."""
    return write_jsonl(
        rows,
        path,
        options,
        lambda chat: {"conversations": [{"from": _SHAREGPT_ROLE[m["role"]], "value": m["content"]} for m in chat]},
    )


def export(
    db: Database,
    path: Path,
    fmt: str,
    *,
    run_id: str | None = None,
    where: str | None = None,
    dedup: bool = False,
    threshold: float = 0.9,
    variations: bool = False,
    system: str | None = None,
    include_partial: bool = False,
    include_all: bool = False,
    min_scores: dict[str, float] | None = None,
) -> ExportReport:
    """Write the selected conversations; by default only the complete ones that passed every blocking
    quality check (`include_all` keeps those that failed one, or were not checked by every check)."""
    try:
        writer = EXPORT_FORMATS.get(fmt)
    except UnknownName as exc:
        raise ExportError(f"{{--format}}: {exc}") from None
    if not 0.0 < threshold <= 1.0:
        raise ExportError(f"{{--threshold}} is a Jaccard similarity in (0, 1] (0.9 drops near copies), not {threshold}")
    rows, outputs = _select(db, run_id, where, min_scores)
    left_out = 0 if include_partial else sum(r["status"] == "partial" for r in rows)
    rows = rows if include_partial else [r for r in rows if r["status"] != "partial"]
    failed = 0 if include_all else sum(r["quality_passed"] is False and not _partial_kept(r) for r in rows)
    unchecked = 0 if include_all else sum(r["quality_passed"] is None for r in rows)
    rows = rows if include_all else [r for r in rows if r["quality_passed"] or _partial_kept(r)]
    matched = len(rows)
    dropped = _near_duplicates(rows, threshold) if dedup else set()
    rows = [r for r in rows if r["conversation_id"] not in dropped]
    tmp = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            written = writer(rows, tmp, ExportOptions(system=system, variations=variations, columns=tuple(outputs)))
        except OSError:
            raise
        except Exception as exc:  # a format a package added: its failure is one line, and no file is touched
            raise ExportError(f"the {fmt!r} export format failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(written, int) or isinstance(written, bool):
            raise ExportError(f"the {fmt!r} export format returned {written!r}, not how many examples it wrote")
        tmp.replace(path)  # a reader never sees half a file
    except OSError as exc:
        raise ExportError(f"cannot write {path} ({{--output}}): {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return ExportReport(
        path, fmt.lower(), written, matched, len(dropped), max(0, written - len(rows)), left_out, failed, unchecked
    )


_ARROW_TYPES = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "list": pa.list_(pa.string()),
}


_QUALITY = pa.list_(
    pa.struct([("check", pa.string()), ("score", pa.float64()), ("passed", pa.bool_()), ("blocking", pa.bool_())])
)


@EXPORT_FORMATS.register("parquet")
def parquet(rows: list[dict[str, Any]], path: Path, options: ExportOptions) -> int:
    """One row per conversation, each structured step's fields as typed columns and the persona beside it."""
    system = options.system
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    strings = pa.list_(pa.string())
    columns: dict[str, pa.Array] = {
        "conversation_id": pa.array([r["conversation_id"] for r in rows], pa.string()),
        "run_id": pa.array([r["run_id"] for r in rows], pa.string()),
        "persona_id": pa.array([r["persona_id"] for r in rows], pa.string()),
        "persona": pa.array([r["persona"] for r in rows], pa.string()),
        "persona_attributes": pa.array([r["persona_attributes"] for r in rows], pa.string()),
        "cycle": pa.array([r["cycle"] for r in rows], pa.int32()),
        "messages": pa.array([_chat(r, system) for r in rows], pa.list_(message)),
        "turns": pa.array([r["turns"] for r in rows], pa.int32()),
        "termination_reason": pa.array([r["termination_reason"] for r in rows], pa.string()),
        "status": pa.array([r["status"] for r in rows], pa.string()),
        "sources": pa.array([r["sources_json"] for r in rows], pa.string()),
        "queries": pa.array([json.loads(r["queries_json"] or "[]") for r in rows], strings),
        "prompt_versions": pa.array([json.loads(r["prompt_versions_json"] or "[]") for r in rows], strings),
        "next_question": pa.array([r["next_question"] for r in rows], pa.string()),
        "recipe_hash": pa.array([r["recipe_hash"] for r in rows], pa.string()),
        "outputs": pa.array([r["outputs_json"] for r in rows], pa.string()),  # every step's output, as JSON
        # every stored variation, always (what --variations adds as examples to the JSONL formats)
        "variations": pa.array(
            [json.loads(r["variations_json"] or "[]") or [] for r in rows],
            pa.list_(pa.struct([(k, pa.string()) for k in ("prompt", "response", "tone", "detail")])),
        ),
        "created_at": pa.array([r["created_at"] for r in rows], pa.timestamp("us", tz="UTC")),
        # every check and judge of the conversation (docs/quality.md), and whether the blocking ones passed
        "quality_passed": pa.array([r["quality_passed"] for r in rows], pa.bool_()),
        "quality": pa.array([json.loads(r["quality_json"] or "[]") for r in rows], _QUALITY),
    }
    for column in options.columns:
        kind = _ARROW_TYPES[column.type]
        values = [r[column.name] for r in rows]
        columns[column.name] = pa.array([v or [] for v in values] if column.type == "list" else values, kind)
    pq.write_table(pa.table(columns), path)
    return len(rows)
