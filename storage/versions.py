"""The schema's versions: one function a version, `mNNN_name(con)`, each applied once (see
storage/migrations.py, which lists them in order and applies what a database is missing). Never edit
one that was released: add the next.
"""

from __future__ import annotations

import json

import duckdb

Column = tuple[str, str, str]  # name, SQL type, what it holds (stored as the column's comment)


def create_table(con: duckdb.DuckDBPyConnection, table: str, comment: str, columns: list[Column]) -> None:
    """CREATE TABLE with a comment on the table and every column, so the schema documents itself."""
    body = ",\n    ".join(f"{name} {sql_type}" for name, sql_type, _ in columns)
    con.execute(f"CREATE TABLE {table} (\n    {body}\n)")
    con.execute(f"COMMENT ON TABLE {table} IS {_quote(comment)}")
    for name, _, text in columns:
        con.execute(f"COMMENT ON COLUMN {table}.{name} IS {_quote(text)}")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def comment_columns(con: duckdb.DuckDBPyConnection, comments: dict[str, str]) -> None:
    """Each `table.column` gets its comment (the schema documents itself: docs/schema.md)."""
    for column, text in comments.items():
        con.execute(f"COMMENT ON COLUMN {column} IS {_quote(text)}")


def m001_personas(con: duckdb.DuckDBPyConnection) -> None:
    # No PRIMARY KEY/UNIQUE constraints: DuckDB's ART indexes make bulk appends of millions of rows
    # several times slower, and the importer (the only writer of personas) dedups by anti-join.
    create_table(
        con,
        "personas",
        "One row per persona in the hub.",
        [
            (
                "persona_id",
                "VARCHAR NOT NULL",
                "the source's own id when it has one, else p_ + 16 hex digits of text_hash",
            ),
            ("text", "VARCHAR NOT NULL", "the persona description"),
            (
                "attributes",
                "JSON",
                'every other field of the source record; "None"/empty become null, list strings lists',
            ),
            ("text_hash", "UHUGEINT NOT NULL", "md5 of the lower-cased, whitespace-collapsed text (exact dedup key)"),
            ("source", "VARCHAR", "the file it was imported from"),
            ("source_line", "BIGINT", "its line (JSONL, TXT, CSV) or 1-based row/index (Parquet, JSON array)"),
            ("source_id", "VARCHAR", "the source's own id field, if any"),
            (
                "layout",
                "VARCHAR",
                "recognised layout: persona, personahub_synthesized, personahub_elite, "
                "finepersonas, nemotron, tinytroupe, text or custom",
            ),
            ("import_id", "VARCHAR NOT NULL", "the import batch (see imports)"),
            ("imported_at", "TIMESTAMPTZ NOT NULL", "when it was imported"),
        ],
    )
    create_table(
        con,
        "imports",
        "One row per `swarm personas import`.",
        [
            ("import_id", "VARCHAR NOT NULL", "imp_<UTC time>_<random>"),
            ("started_at", "TIMESTAMPTZ NOT NULL", "when the import started"),
            ("finished_at", "TIMESTAMPTZ", "when it ended"),
            ("status", "VARCHAR NOT NULL", "finished, or strict_refused (--strict found bad lines; nothing imported)"),
            ("sources", "JSON", "per file: path, format, layout and its counts"),
            ("options", "JSON", "the options the import ran with"),
            ("imported", "BIGINT", "personas added"),
            ("duplicates", "BIGINT", "records whose normalised text was already in the hub or earlier in the batch"),
            ("near_duplicates", "BIGINT", "records dropped by --dedup near (listed in import_rejects)"),
            ("rejected", "BIGINT", "bad records (listed in import_rejects)"),
        ],
    )
    create_table(
        con,
        "import_rejects",
        "Every record an import did not take, with the reason.",
        [
            ("import_id", "VARCHAR NOT NULL", "the import batch"),
            ("source", "VARCHAR NOT NULL", "the file"),
            ("line", "BIGINT", "line or row in the file"),
            (
                "reason",
                "VARCHAR NOT NULL",
                "bad_json, not_an_object, bad_encoding, no_text, text_not_string, "
                "empty_text, too_long, csv_*, tinytroupe_fragment or near_duplicate",
            ),
            ("detail", "VARCHAR", "more about the reason (the near-duplicate's match, the length, …)"),
            ("raw", "VARCHAR", "the start of the record as it was in the file, so nothing is lost"),
        ],
    )


def m002_persona_fields(con: duckdb.DuckDBPyConnection) -> None:
    # The catalogue of attribute keys lets `personas_flat` expose them as typed columns, so a filter can
    # say `age > 40` instead of `CAST(attributes->>'age' AS INT) > 40`.
    create_table(
        con,
        "persona_fields",
        "The attribute keys seen so far, as columns of personas_flat.",
        [
            ("field", "VARCHAR NOT NULL", "the key in personas.attributes"),
            (
                "sql_type",
                "VARCHAR NOT NULL",
                "its column type: BIGINT, DOUBLE, BOOLEAN, VARCHAR, a list of those, or JSON",
            ),
            ("column_name", "VARCHAR NOT NULL", "its column in personas_flat (attr_<key> when it clashes)"),
            ("first_import_id", "VARCHAR", "the import that first brought it"),
        ],
    )
    con.execute("CREATE VIEW personas_flat AS SELECT * FROM personas")


def m003_pages(con: duckdb.DuckDBPyConnection) -> None:
    create_table(
        con,
        "pages",
        "Every page attempt of a crawl, success or failure.",
        [
            ("page_id", "VARCHAR NOT NULL", "pg_<random>: one id per attempt"),
            ("crawl_id", "VARCHAR", "the crawl or run that fetched it"),
            ("url", "VARCHAR NOT NULL", "the URL asked for (normalised)"),
            ("final_url", "VARCHAR", "where the redirects ended"),
            ("host", "VARCHAR", "host[:port] of url"),
            ("depth", "INTEGER", "link distance from the seeds"),
            ("status", "INTEGER", "HTTP status of the final response (NULL when none came)"),
            ("content_type", "VARCHAR", "the response's media type"),
            ("fetched_at", "TIMESTAMPTZ NOT NULL", "when the attempt ended"),
            ("elapsed_ms", "DOUBLE", "fetch time, retries and waits for the host included"),
            ("attempts", "INTEGER", "requests made for it (retries included)"),
            ("bytes", "BIGINT", "decoded body size"),
            ("charset", "VARCHAR", "the charset the body was decoded with"),
            ("rendered", "BOOLEAN", "whether a browser rendered it"),
            ("title", "VARCHAR", "extracted title"),
            ("text", "VARCHAR", "extracted main text"),
            ("language", "VARCHAR", "declared or detected language"),
            ("metadata", "JSON", "author, date, site name, description, redirects, …"),
            ("links", "JSON", "outgoing links (absolute URLs)"),
            ("content_hash", "VARCHAR", "sha1 of the normalised text (exact duplicate key)"),
            ("duplicate_of", "VARCHAR", "page_id of an earlier page with the same or nearly the same text"),
            (
                "error",
                "VARCHAR",
                "NULL on success, else a reason code: robots_disallowed, blocked_private_address, "
                "too_large, timeout, http_429, http_500, not_html, redirect_loop, too_short, …",
            ),
            ("error_detail", "VARCHAR", "more about the error"),
        ],
    )


def m004_llm(con: duckdb.DuckDBPyConnection) -> None:
    create_table(
        con,
        "llm_calls",
        "Every LLM call, answered from the cache or not.",
        [
            ("call_id", "VARCHAR NOT NULL", "llm_<random>"),
            ("run_id", "VARCHAR", "the run it belongs to, if any"),
            ("purpose", "VARCHAR", "what it was for: interests, user_turn, assistant_turn, metadata, …"),
            ("model", "VARCHAR", "the model asked"),
            ("endpoint", "VARCHAR", "the base URL"),
            ("mode", "VARCHAR", "text, json_schema, json_object or instructions (how structure was asked for)"),
            ("prompt_tokens", "BIGINT", "as the endpoint reported them (0 when cached)"),
            ("completion_tokens", "BIGINT", "as the endpoint reported them (0 when cached)"),
            ("latency_ms", "DOUBLE", "wall time of the call, waits and retries included"),
            ("attempts", "INTEGER", "requests sent (0 when cached)"),
            (
                "status",
                "VARCHAR",
                "ok, or a reason: rate_limited, server_error, timeout, invalid_json, "
                "schema_invalid, length, auth, unavailable",
            ),
            ("cached", "BOOLEAN", "answered from the cache"),
            ("cost_usd", "DOUBLE", "estimated from the price table (0 when cached or unknown)"),
            ("cache_key", "VARCHAR", "sha256 of model, messages, parameters and schema"),
            ("error", "VARCHAR", "what went wrong, when it did"),
            ("created_at", "TIMESTAMPTZ NOT NULL", "when the call ended"),
        ],
    )
    create_table(
        con,
        "llm_cache",
        "Responses by content: the same request is never sent twice.",
        [
            ("cache_key", "VARCHAR NOT NULL", "sha256 of model, messages, parameters and schema"),
            ("model", "VARCHAR", "the model"),
            ("content", "VARCHAR", "the answer's text (after reasoning blocks were removed)"),
            ("prompt_tokens", "BIGINT", "usage of the original call"),
            ("completion_tokens", "BIGINT", "usage of the original call"),
            ("created_at", "TIMESTAMPTZ NOT NULL", "when it was stored"),
        ],
    )


def m005_conversations(con: duckdb.DuckDBPyConnection) -> None:
    create_table(
        con,
        "conversations",
        "One multi-turn conversation from one persona's cycle.",
        [
            ("conversation_id", "VARCHAR NOT NULL", "cv_<random>"),
            ("run_id", "VARCHAR", "the run that made it"),
            ("persona_id", "VARCHAR", "the persona speaking as the user"),
            ("cycle", "INTEGER", "which cycle of that persona (0 first)"),
            ("messages", "JSON", "the OpenAI chat list [{role, content}, …]"),
            ("sources", "JSON", "the pages cited: [{n, page_id, url, title}]"),
            ("metadata", "JSON", "tags, keywords, summary, tone, … (validated)"),
            ("queries", "JSON", "the search queries that found the pages"),
            ("termination_reason", "VARCHAR", "turns_reached, persona_done or context_full"),
            ("variations", "JSON", "rephrased prompt/response pairs on the same topic, when asked for"),
            ("prompt_versions", "JSON", "the prompt templates (name.vN) that made it"),
            ("created_at", "TIMESTAMPTZ NOT NULL", "when it was finished"),
        ],
    )


def m006_runs(con: duckdb.DuckDBPyConnection) -> None:
    create_table(
        con,
        "runs",
        "One swarm run: its effective config, status, counts and costs (counts are re-read from the tables).",
        [
            ("run_id", "VARCHAR NOT NULL", "run_<UTC time>_<random>"),
            ("status", "VARCHAR NOT NULL", "running, finished, interrupted or failed"),
            ("config", "JSON", "the full effective config (what --resume reuses)"),
            ("started_at", "TIMESTAMPTZ NOT NULL", "when the run was first started"),
            ("finished_at", "TIMESTAMPTZ", "when it last stopped (finished, interrupted or failed)"),
            ("updated_at", "TIMESTAMPTZ", "last heartbeat of the process running it"),
            ("counts", "JSON", "personas, units ok/failed, failures by reason, pages ok/failed, llm calls"),
            ("personas", "INTEGER", "personas selected"),
            ("conversations", "INTEGER", "conversations stored"),
            ("failed_units", "INTEGER", "persona×cycle units whose last attempt failed"),
            ("pages_ok", "INTEGER", "pages fetched and extracted"),
            ("pages_failed", "INTEGER", "page attempts that failed"),
            ("llm_calls", "INTEGER", "LLM calls, cached ones included"),
            ("prompt_tokens", "BIGINT", "sent to the endpoint (cached calls count 0)"),
            ("completion_tokens", "BIGINT", "received from the endpoint"),
            ("cost_usd", "DOUBLE", "estimated from the price table"),
            ("elapsed_s", "DOUBLE", "seconds of work over all sessions of this run"),
            ("sessions", "INTEGER", "how many times it was started (1 + resumes)"),
            ("pid", "INTEGER", "process id of the last session"),
            ("hostname", "VARCHAR", "machine of the last session"),
            ("error", "VARCHAR", "why it failed or stopped, when it did"),
        ],
    )
    create_table(
        con,
        "run_personas",
        "The personas a run selected, in order: what --resume works through.",
        [
            ("run_id", "VARCHAR NOT NULL", "the run"),
            ("position", "INTEGER NOT NULL", "order in the sample (0 first)"),
            ("persona_id", "VARCHAR NOT NULL", "the persona"),
        ],
    )
    create_table(
        con,
        "run_units",
        "Every attempt at one persona×cycle unit of a run, and how it ended.",
        [
            ("run_id", "VARCHAR NOT NULL", "the run"),
            ("persona_id", "VARCHAR NOT NULL", "the persona"),
            ("cycle", "INTEGER NOT NULL", "which cycle (0 first)"),
            ("session", "INTEGER", "which session of the run tried it (1 first)"),
            ("status", "VARCHAR NOT NULL", "ok, failed or abandoned (stopped by an interruption)"),
            (
                "reason",
                "VARCHAR",
                "for failures: no_pages, search_*, schema_invalid, invalid_json, length, rate_limited, timeout, …",
            ),
            ("error", "VARCHAR", "what went wrong"),
            ("conversation_id", "VARCHAR", "the conversation it made"),
            ("started_at", "TIMESTAMPTZ", "when the attempt began"),
            ("finished_at", "TIMESTAMPTZ NOT NULL", "when it ended"),
        ],
    )
    # idempotent writes: a resumed run re-submitting a conversation or a unit's selection changes nothing
    con.execute("CREATE UNIQUE INDEX conversations_id ON conversations (conversation_id)")
    con.execute("CREATE UNIQUE INDEX runs_id ON runs (run_id)")
    con.execute("CREATE UNIQUE INDEX run_personas_key ON run_personas (run_id, position)")


def m007_cache_scope(con: duckdb.DuckDBPyConnection) -> None:
    # a swarm's answers belong to one unit of one run (see agents/llm/client.py): the column lets a run
    # load only its own keys and those anyone may reuse, not every key every run ever stored
    con.execute("ALTER TABLE llm_cache ADD COLUMN run_id VARCHAR")
    comments = {
        "llm_cache.cache_key": "sha256 of model, messages, parameters, schema and, for a swarm's calls, the unit "
        "(run, persona, cycle, attempt)",
        "llm_cache.run_id": "the run whose unit the answer was made for; NULL: any later call may reuse it",
        "llm_calls.status": "ok, or a reason: rate_limited, server_error, timeout, invalid_json, schema_invalid, "
        "length, auth, unavailable, cancelled (the run was stopped mid-call)",
    }
    comment_columns(con, comments)


# Frozen copies of the helpers as they were when migration 8 shipped. The live ones (storage/sql.py,
# persona_hub/fields.py) may change; an old database must upgrade the same way whatever they become.
def _m008_key_path(key: str) -> str:
    return "$." + json.dumps(key, ensure_ascii=False) if key else "/"


def _m008_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _m008_column_type(sql_type: str) -> str:
    return {"NULL": "VARCHAR", "NULL[]": "VARCHAR[]"}.get(sql_type, sql_type)


def _m008_attribute_sql(field: str, sql_type: str) -> str:
    path = _quote(_m008_key_path(field))
    if sql_type == "JSON":
        return f"CASE WHEN json_type(attributes, {path}) <> 'NULL' THEN attributes->{path} END"
    if sql_type in ("VARCHAR", "NULL"):
        return f"attributes->>{path}"
    return f"TRY_CAST(attributes->{path} AS {_m008_column_type(sql_type)})"


def _m008_free_column_name(base: str, taken: set[str]) -> str:
    name, n = base, 1
    while name.lower() in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name.lower())
    return name


def m008_typed_attributes(con: duckdb.DuckDBPyConnection) -> None:
    # Attributes become real columns of personas: a filter over a million personas then reads a typed
    # column instead of parsing every row's JSON (which made a filtered sample cost ~0.15 s).
    fields = con.execute("SELECT field, sql_type, column_name FROM persona_fields ORDER BY rowid").fetchall()
    taken = {name.lower() for name, *_ in con.execute("DESCRIBE personas").fetchall()}
    for field, sql_type, old_name in fields:
        # the view allowed names a table does not: "Age" beside "age", two keys both attr_text, ""
        column = _m008_free_column_name(old_name or "attr_", taken)
        if column != old_name:
            con.execute("UPDATE persona_fields SET column_name = ? WHERE field = ?", [column, field])
        con.execute(f"ALTER TABLE personas ADD COLUMN {_m008_ident(column)} {_m008_column_type(sql_type)}")
        con.execute(f"UPDATE personas SET {_m008_ident(column)} = {_m008_attribute_sql(field, sql_type)}")
        text = f"attribute {json.dumps(field, ensure_ascii=False)}, typed (its value is also in attributes)"
        con.execute(f"COMMENT ON COLUMN personas.{_m008_ident(column)} IS {_quote(text)}")
    con.execute("CREATE OR REPLACE VIEW personas_flat AS SELECT * FROM personas")
    con.execute(
        "COMMENT ON TABLE personas IS 'One row per persona in the hub, plus one typed column per attribute key "
        "(see persona_fields), added as imports bring new keys.'"
    )
    con.execute("COMMENT ON TABLE persona_fields IS 'The attribute keys seen so far, each a typed column of personas.'")
    con.execute(
        "COMMENT ON COLUMN persona_fields.column_name IS "
        "'its column in personas (attr_<key> when it clashes with a persona column, <key>_2 when it differs "
        "from another key only in case)'"
    )
    con.execute(
        "COMMENT ON COLUMN persona_fields.sql_type IS "
        "'its column type: BIGINT, DOUBLE, BOOLEAN, VARCHAR, a list of those, JSON, NULL (no value seen "
        "yet; a VARCHAR column) or NULL[] (only empty lists yet; a VARCHAR[] column)'"
    )


def m009_hostile_input_reasons(con: duckdb.DuckDBPyConnection) -> None:
    # the reasons the hardening against hostile pages and endpoints added: the column docs say them
    comments = {
        "pages.url": "the URL asked for (normalised; a user name or password is never stored)",
        "pages.error": "NULL on success, else a reason code: robots_disallowed, blocked_private_address, bad_url, "
        "bad_redirect, too_large, timeout, http_429, http_500, not_html, bad_charset, redirect_loop, too_short, "
        "internal_error (a fault of ours; the detail has it), …",
        "llm_calls.status": "ok, or a reason: rate_limited, server_error, timeout, bad_response, empty_answer, "
        "too_large, too_long, invalid_json, schema_invalid, length, auth, unavailable, cancelled (the run was "
        "stopped mid-call)",
    }
    comment_columns(con, comments)


def m010_pages_run_id(con: duckdb.DuckDBPyConnection) -> None:
    # pages.crawl_id held a run id whenever a swarm fetched the page: name it for that, as the other
    # tables do, so `WHERE run_id = ?` reads the same everywhere
    con.execute("ALTER TABLE pages RENAME COLUMN crawl_id TO run_id")
    comments = {
        "pages.run_id": "the swarm run (run_…) or swarm crawl (crawl_…) that fetched it",
        "conversations.conversation_id": "cv_ + 16 hex digits of sha256(run, persona, cycle): the same unit "
        "always gets the same id, so a resumed run cannot store it twice",
        "llm_calls.status": "ok, or a reason: rate_limited, server_error, bad_request, timeout, bad_response, "
        "empty_answer, too_large, too_long, invalid_json, schema_invalid, length, auth, unavailable, cancelled "
        "(the run was stopped mid-call)",
    }
    comment_columns(con, comments)


def m011_invalid_answers(con: duckdb.DuckDBPyConnection) -> None:
    # a structured answer that failed validation twice was lost with its call: keep it, to read
    con.execute("ALTER TABLE llm_calls ADD COLUMN answer VARCHAR")
    text = (
        "what the model answered when the answer could not be used (invalid JSON, a schema miss after the "
        "repair round, …), its first 20,000 characters; NULL otherwise"
    )
    con.execute(f"COMMENT ON COLUMN llm_calls.answer IS {_quote(text)}")


def m012_partial_conversations(con: duckdb.DuckDBPyConnection) -> None:
    # a conversation whose late step failed (its metadata, its variations) is kept, marked partial
    con.execute("ALTER TABLE conversations ADD COLUMN status VARCHAR DEFAULT 'complete'")
    con.execute("ALTER TABLE conversations ADD COLUMN failed_steps JSON")
    comments = {
        "conversations.status": "complete, or partial: a step after the conversation failed (see failed_steps); "
        "swarm run --resume runs only those steps, and swarm export leaves partial ones out unless asked",
        "conversations.failed_steps": "step name → {reason, detail} for each step that failed; NULL when complete",
        "run_units.status": "ok, partial (its conversation is kept, a later step failed), failed or abandoned "
        "(stopped by an interruption)",
    }
    comment_columns(con, comments)
