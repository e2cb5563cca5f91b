"""The migrations since recipes: the recipe a run follows and the outputs of its steps (m013), the
quality checks and judges of each conversation (m014), the figures of a run as a whole (m015), and
the persona hub's near-dedup index (m016). The earlier ones are in storage/versions.py."""

from __future__ import annotations

import duckdb

from storage.versions import comment_columns, create_table


def m013_recipes(con: duckdb.DuckDBPyConnection) -> None:
    # the cycle is a recipe of steps: a run keeps the recipe it ran, a conversation each step's output
    con.execute("ALTER TABLE runs ADD COLUMN recipe VARCHAR")
    con.execute("ALTER TABLE runs ADD COLUMN recipe_hash VARCHAR")
    con.execute("ALTER TABLE conversations ADD COLUMN recipe_hash VARCHAR")
    con.execute("ALTER TABLE conversations ADD COLUMN outputs JSON")
    con.execute("ALTER TABLE conversations ADD COLUMN next_question VARCHAR")
    # conversations made before recipes: their metadata and variations are the default recipe's outputs
    con.execute(
        "UPDATE conversations SET next_question = json_extract_string(metadata, '$.next_question'), "
        "outputs = CASE WHEN metadata IS NULL AND variations IS NULL THEN NULL ELSE json_merge_patch("
        "CASE WHEN metadata IS NULL THEN '{}' ELSE json_object('metadata', metadata) END, "
        "CASE WHEN variations IS NULL THEN '{}' ELSE json_object('variations', variations) END) END"
    )
    comments = {
        "runs.recipe": "the text of the recipe the run follows (swarm recipe show prints the default); "
        "--resume uses this text, not the file",
        "runs.recipe_hash": "the first 16 hex digits of the recipe text's SHA-256",
        "conversations.recipe_hash": "the recipe that made it (runs.recipe_hash)",
        "conversations.outputs": "step name → that step's output (interests, metadata, variations, next, and "
        "any step a recipe adds); swarm export flattens the structured ones into columns",
        "conversations.next_question": "the question the persona's next cycle searches for (the `next` step)",
        "conversations.prompt_versions": "the prompts that made it: step[.part]@first 8 hex digits of the "
        "template's SHA-256 (name.vN before recipes)",
        "conversations.metadata": "the output of the recipe's step named metadata (also in outputs)",
        "llm_calls.purpose": "the recipe step (and part) it was for: interests, conversation.user, "
        "conversation.assistant, metadata, … (user_turn and assistant_turn before recipes)",
    }
    comment_columns(con, comments)


def m014_quality(con: duckdb.DuckDBPyConnection) -> None:
    # checks on every conversation (agents/quality): one row per conversation and check
    create_table(
        con,
        "quality",
        "One row per conversation and quality check (docs/quality.md defines each check and its threshold).",
        [
            ("conversation_id", "VARCHAR NOT NULL", "the conversation checked"),
            ("run_id", "VARCHAR", "its run"),
            ("check_name", "VARCHAR NOT NULL", "citations, support, echo, degenerate or metadata"),
            ("score", "DOUBLE", "0 to 1, higher is better"),
            ("passed", "BOOLEAN", "the score reached the check's threshold"),
            ("blocking", "BOOLEAN", "a conversation that fails it is left out of swarm export by default"),
            ("detail", "VARCHAR", "what was found, in one line"),
            ("checked_at", "TIMESTAMP WITH TIME ZONE", "when"),
        ],
    )
    con.execute("CREATE UNIQUE INDEX quality_key ON quality (conversation_id, check_name)")


def m015_run_metrics(con: duckdb.DuckDBPyConnection) -> None:
    # what `swarm eval` measures of a run as a whole (diversity), per persona stratum and for all of it
    create_table(
        con,
        "run_metrics",
        "Figures of a run as a whole, from swarm eval: diversity of its conversations, per persona stratum.",
        [
            ("run_id", "VARCHAR NOT NULL", "the run measured"),
            ("stratum", "VARCHAR NOT NULL", "'' for the whole run, else attribute=value of the personas measured"),
            (
                "metric",
                "VARCHAR NOT NULL",
                "distinct_1, distinct_2, near_duplicate_rate, embedding_distance, vendi_score, "
                "persona_similarity_correlation (docs/quality.md)",
            ),
            ("value", "DOUBLE", "the figure (NULL when it cannot be worked out, see detail)"),
            ("n", "INTEGER", "conversations it was worked out from"),
            ("detail", "VARCHAR", "how, or why not"),
            ("measured_at", "TIMESTAMP WITH TIME ZONE", "when"),
        ],
    )
    con.execute("CREATE UNIQUE INDEX run_metrics_key ON run_metrics (run_id, stratum, metric)")
    comment_columns(
        con,
        {
            "quality.check_name": "a check (citations, support, echo, degenerate, language, metadata) or a judge "
            "step's name (grounding_recall, grounding_precision, persona, helpfulness in the default recipe)",
            "quality.blocking": "a conversation that fails it is left out of swarm export by default",
        },
    )


def m016_persona_minhash(con: duckdb.DuckDBPyConnection) -> None:
    # near dedup checks new personas against this index in batches, not against signatures of the
    # whole hub held in memory; 10 bands of 12 MinHash values (persona_hub/near_dedup.py says why)
    create_table(
        con,
        "persona_minhash",
        "MinHash LSH band keys of personas' texts: the index swarm personas import --dedup near checks "
        "new personas against (personas imported without it are added the next time it runs).",
        [("text_hash", "UHUGEINT NOT NULL", "the persona's text_hash")]
        + [
            (f"b{band}", "UBIGINT NOT NULL", f"band {band}: a hash of MinHash values {12 * band}-{12 * band + 11}")
            for band in range(10)
        ],
    )
