"""Recipes: the default one is the fixed cycle it replaced, byte for byte; a user's recipe is checked with
lines and fields, renders persona attributes, routes a step to another endpoint, adds steps whose
outputs become export columns. Real servers throughout: the test LLM server(s), the test website."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from agents.cycle import CycleConfig, CycleFailed, PersonaView, run_persona
from agents.llm import LLMClient, LLMSettings
from agents.recipes import RecipeError, default, load, parse
from agents.recipes.templates import TemplateProblem, compile_template, render
from agents.steps import STEP_KINDS, CycleState, StepKind
from storage import BatchWriter, Database
from tests.support.cli import REPO, RUN, Cli
from tests.support.llm_server import LLMServer
from tests.support.runs import rows
from tests.test_cycle import PERSONA, stub_reader

GOLDEN = REPO / "tests" / "data" / "default_recipe_requests.json"


async def cycles(db_path: Path, server: LLMServer, recipe: Any = None, **config: Any) -> list[Any]:
    db = Database(db_path)
    settings = LLMSettings(base_url=server.base_url, api_key="t", model="test-model", backoff_base=0.01, timeout=5)
    with BatchWriter(db, flush_interval=0.05) as writer:
        client = LLMClient(settings, db, writer, run_id="run_t")
        try:
            persona = PersonaView("p_1", PERSONA, {"occupation": "nurse"})
            return await run_persona(client, persona, stub_reader, CycleConfig(**config), cycles=2, recipe=recipe)
        finally:
            await client.aclose()


async def test_the_default_recipe_sends_exactly_what_the_fixed_cycle_sent(
    llm_server: LLMServer, isolated_db: Path
) -> None:
    # recorded once from the cycle as it was before recipes (two cycles, two turns, two variations), when
    # the test server's assistant echoed the user; since then only the metadata schema's tags and keywords
    # changed (a pattern: words, not JSON or numbers), re-recorded after checking nothing else did
    llm_server.grounded = False
    await cycles(isolated_db, llm_server, turns=2, variations=2)
    sent = [r["body"] for r in llm_server.requests]
    assert sent == json.loads(GOLDEN.read_text()), "the default recipe must reproduce the fixed cycle's requests"


def test_recipe_show_prints_the_default_and_what_it_prints_checks_clean(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("recipe", "show")
    assert code == 0 and out == default().text
    copy = tmp_path / "mine.toml"
    copy.write_text(out)
    code, out, err = cli("recipe", "check", str(copy))
    assert code == 0, err
    assert f"recipe hash {default().hash}" in out and "metadata (structured): metadata@" in out
    code, out, _ = cli("recipe", "list")
    assert code == 0 and "default" in out and "attributes" in out


BAD = """name = "bad"

[[steps]]
name = "interests"
kind = "interests"
template = '''
Persona: {{ persona }}, {{ persnoa }}
'''
[steps.output]
fields.topics = { type = "list", items = { type = "string" }, min_items = 3 }

[[steps]]
name = "read"
kind = "red"

[[steps]]
name = "talk"
kind = "converse"
turns = 2
[steps.user]
template = "{{ persona }} {% if %}"
[steps.user.output]
fields.message = { type = "string", max_length = 300 }
[steps.assistant]
template = "{{ sources }}"
model = "judge"

[[steps]]
name = "judge"
kind = "structured"
tempreature = 0.2
template = "{{ transcript }}"
[steps.output]
fields.score = { type = "integer", minimum = 5, maximum = 1 }
"""


def test_recipe_check_names_the_line_and_field_of_every_problem(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    code, out, err = cli("recipe", "check", str(path))
    assert code == 1 and not out
    said = " ".join(err.split())
    for expected in [
        "line 7: steps[0].template: the template reads {{ persnoa }}, which is not defined here",
        "line 10: steps[0].output.fields: the output needs a string list field 'queries'",
        "line 14: steps[1].kind: unknown step kind 'red'; choose one of: interests, read, converse",
        "line 21: steps[2].user.template: template syntax",
        "line 26: steps[2].assistant.model: no model alias 'judge'",
        "line 31: steps[3].tempreature: unknown key 'tempreature' (did you mean 'temperature'?)",
        "line 34: steps[3].output.fields.score: minimum (5.0) is more than maximum (1.0)",
    ]:
        assert expected in said, f"{expected!r} not in:\n{err}"
    # not TOML at all: the parser's own line and column
    path.write_text('name = "x"\n[[steps]\n')
    code, _, err = cli("recipe", "check", str(path))
    assert code == 1 and "not valid TOML" in err and "line 2" in err
    code, _, err = cli("run", "--recipe", str(tmp_path / "missing.toml"), "--urls", str(path))
    assert code == 1 and "no such file" in err


def test_a_template_cannot_reach_python_and_a_missing_attribute_is_an_error_not_blank() -> None:
    persona = PersonaView("p", "A nurse.", {"occupation": "nurse"})
    with pytest.raises(TemplateProblem, match=r"unsafe|access"):
        render(compile_template("{{ persona.__class__.__mro__ }}"), {"persona": persona})
    with pytest.raises(TemplateProblem, match="unsafe"):  # nor change what later steps read
        render(compile_template("{{ outputs.update({'metadata': 1}) }}"), {"outputs": {}})
    with pytest.raises(TemplateProblem, match="shoe_size"):
        render(compile_template("{{ persona.shoe_size }}"), {"persona": persona})
    text = "{{ persona }} ({{ persona.occupation }}, {{ persona.country | default('somewhere') }})"
    assert render(compile_template(text), {"persona": persona}) == "A nurse. (nurse, somewhere)"


async def test_a_template_that_cannot_render_for_a_persona_fails_the_unit_with_its_reason(
    llm_server: LLMServer, isolated_db: Path
) -> None:
    text = default().text.replace("Persona:\n{{ persona }}", "Persona:\n{{ persona }} ({{ persona.shoe_size }})")
    recipe = parse(text)
    with pytest.raises(CycleFailed) as info:
        await cycles(isolated_db, llm_server, recipe=recipe)
    assert info.value.reason == "template_error" and "shoe_size" in str(info.value)
    assert not llm_server.requests, "nothing is sent for a prompt that did not render"


def test_the_bundled_attributes_recipe_tells_the_simulator_the_persona_s_attributes(
    cli: Cli, swarm_env: dict[str, str], llm_server: LLMServer, isolated_db: Path, tmp_path: Path
) -> None:
    code, out, err = cli(*RUN, "-n", "3", "--turns", "1", "--recipe", "attributes", "--quiet")
    assert code == 0, err
    run_id = out.strip().splitlines()[-1]
    (stored_text, stored_hash), *_ = rows(
        isolated_db, "SELECT recipe, recipe_hash FROM runs WHERE run_id = ?", [run_id]
    )
    assert stored_text == load("attributes").text and stored_hash == load("attributes").hash
    code, out, _ = cli("recipe", "show", "--run", run_id)
    assert code == 0 and out == stored_text
    code, out, _ = cli("runs", "show", run_id)
    assert code == 0 and f"recipe attributes ({stored_hash})" in out
    # every sampled persona's attributes reached the simulator's prompt, rendered
    personas = rows(
        isolated_db,
        "SELECT p.text, p.attributes->>'occupation', p.attributes->>'country' FROM run_personas r "
        "JOIN personas p USING (persona_id) WHERE r.run_id = ?",
        [run_id],
    )
    asks = [r["body"]["messages"][-1]["content"] for r in llm_server.requests if "Role-play" in str(r["body"])]
    for text, occupation, country in personas:
        mine = [a for a in asks if text in a]
        assert mine and all(f"- occupation: {occupation}\n" in a and f"- country: {country}\n" in a for a in mine)
    # each conversation records its recipe and the template versions; the judge step's fields are typed columns
    made = rows(
        isolated_db, "SELECT recipe_hash, prompt_versions, outputs FROM conversations WHERE run_id = ?", [run_id]
    )
    assert len(made) == 3
    for recipe_hash, versions, outputs in made:
        assert recipe_hash == stored_hash and any(v.startswith("quality@") for v in json.loads(versions))
        assert set(json.loads(outputs)) == {"interests", "read", "metadata", "quality", "next"}
    target = tmp_path / "out.parquet"
    code, _, err = cli(
        "export", "--run", run_id, "--format", "parquet", "-o", str(target), "--where", "in_character >= 1"
    )
    assert code == 0, err
    table = pq.read_table(target)
    assert table.num_rows == 3
    assert (
        str(table.schema.field("grounded").type) == "bool" and str(table.schema.field("in_character").type) == "int64"
    )
    assert str(table.schema.field("tags").type) == "list<element: string>"


def test_a_model_alias_sends_its_step_to_another_endpoint(
    cli: Cli, swarm_env: dict[str, str], llm_server: LLMServer, isolated_db: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    with LLMServer(api_key="judge-key") as judge:
        text = default().text.replace(
            '[[steps]]\nname = "metadata"\nkind = "structured"\n',
            '[[steps]]\nname = "metadata"\nkind = "structured"\nmodel = "judge"\n',
        )
        text += (
            f'\n[models.judge]\nbase_url = "{judge.base_url}"\nmodel = "judge-model"\napi_key_env = "SWARM_KEY_JUDGE"\n'
        )
        recipe = tmp_path / "judged.toml"
        recipe.write_text(text)
        # its key variable unset: the run stops before it starts, and says which variable
        code, _, err = cli(*RUN, "-n", "2", "--turns", "1", "--recipe", str(recipe), "--quiet")
        assert code == 1 and "SWARM_KEY_JUDGE" in err and not rows(isolated_db, "SELECT * FROM runs")
        monkeypatch.setenv("SWARM_KEY_JUDGE", "judge-key")
        code, _, err = cli(*RUN, "-n", "2", "--turns", "1", "--recipe", str(recipe), "--quiet")
        assert code == 0, err
        judged = [r["body"] for r in judge.requests]
    schemas = [(r["response_format"] or {}).get("json_schema", {}).get("name") for r in judged]
    assert schemas == ["Metadata", "Metadata"] and {r["model"] for r in judged} == {"judge-model"}
    main = [str(r["body"].get("response_format")) for r in llm_server.requests]
    assert not any("Metadata" in m for m in main), "the metadata step went only to its alias"
    calls = rows(isolated_db, "SELECT purpose, model, endpoint FROM llm_calls WHERE purpose = 'metadata'")
    assert {(m, e.rstrip("/")) for _, m, e in calls} == {("judge-model", judge.base_url)}


async def test_the_number_of_turns_can_depend_on_the_persona(llm_server: LLMServer, isolated_db: Path) -> None:
    text = default().text.replace(
        "# turns = 4              # unset: the run's --turns",
        "turns = \"1 if persona.occupation == 'nurse' else 3\"",
    )
    first, second = await cycles(isolated_db, llm_server, recipe=parse(text))  # the persona is a nurse
    assert len(first.messages) == len(second.messages) == 2 and first.termination_reason == "turns_reached"
    with pytest.raises(RecipeError, match=r"steps\[2\]\.turns: .*expression syntax"):
        parse(text.replace("1 if persona.occupation", "1 if if persona.occupation"))
    gives_text = parse(text.replace("1 if persona.occupation == 'nurse' else 3", "persona.occupation"))
    with pytest.raises(CycleFailed, match="gave 'nurse', not 1 to 100"):
        await cycles(isolated_db, llm_server, recipe=gives_text)


async def test_a_step_kind_a_package_registers_runs_and_keeps_its_output(
    llm_server: LLMServer, isolated_db: Path
) -> None:
    @STEP_KINDS.register("shout")
    class Shout(StepKind):
        """The persona's first message, in capitals (no model call)."""

        prompt = "none"

        async def run(self, state: CycleState) -> None:
            state.conversation.outputs[self.name] = state.conversation.messages[0]["content"].upper()

    try:
        text = default().text + '\n[[steps]]\nname = "loud"\nkind = "shout"\n'
        (first, _) = await cycles(isolated_db, llm_server, recipe=parse(text), turns=1)
    finally:
        STEP_KINDS.unregister("shout")
    assert first.outputs["loud"] == first.messages[0]["content"].upper() and first.status == "complete"


def test_recipe_kinds_lists_every_kind(cli: Cli) -> None:
    code, out, _ = cli("recipe", "kinds")
    assert code == 0
    for kind in ("interests", "read", "converse", "structured", "variations", "next"):
        assert kind in out


def test_an_empty_recipe_and_a_field_the_answer_model_would_shadow_are_refused() -> None:
    with pytest.raises(RecipeError) as info:
        parse('name = "x"\nsteps = []\n', "x.toml")
    assert "steps" in str(info.value)
    shadowing = default().text.replace("fields.tone = ", "fields.json = ", 1)
    with pytest.raises(RecipeError, match="field name 'json' is taken"):
        parse(shadowing)


def test_hostile_recipes_are_refused_with_a_reason_not_a_traceback(tmp_path: Path, cli: Cli) -> None:
    base = default().text
    cases = {
        # a shared recipe must not send one of your secrets to a host of its choosing
        "reads keys only from variables named SWARM_KEY_": base + '\n[models.x]\nbase_url = "http://127.0.0.1:9/v1"\n'
        'api_key_env = "OPENAI_API_KEY"\n',
        "is not an http(s) URL": base + '\n[models.x]\nbase_url = "file:///etc/passwd"\n',
        "no step 'nothing' before this one": base.replace('from = "metadata.next_question"', 'from = "nothing.here"'),
        "no output field 'nope'": base.replace('from = "metadata.next_question"', 'from = "metadata.nope"'),
        "no step makes the conversation": base[: base.index("# 3. The persona")],
        "steps[0].max_tokens": base.replace("max_tokens = 400", "max_tokens = true"),
        "the answer's validator cannot use": base.replace(
            'fields.tone = { type = "string", min_length = 1, max_length = 100 }',
            'fields.tone = { type = "string", pattern = "(?<=a)b" }',
            1,
        ),
        "nested too deeply": 'name = "x"\nsteps = [' + "[" * 600 + "]" * 600 + "]\n",
    }
    for expected, text in cases.items():
        with pytest.raises(RecipeError) as info:
            parse(text)
        assert expected in str(info.value), f"{expected!r} not in {info.value}"
    with pytest.raises(RecipeError, match="not a regular file"):
        load("/dev/zero")
    # a folder named like a bundled recipe does not shadow it: ./default is the way to a local file
    (tmp_path / "default").mkdir()
    os.chdir(tmp_path)
    code, out, _ = cli("recipe", "show")
    assert code == 0 and out == default().text


async def test_a_runaway_template_in_a_late_step_keeps_the_conversation(
    llm_server: LLMServer, isolated_db: Path
) -> None:
    endless = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"
    huge = "{{ 'x' * (10**9 + cycle) }}"
    text = default().text.replace("Describe the conversation below for a training-data catalogue.", endless)
    text = text.replace("Below is a conversation. Write {{ n }} new", huge + " {{ n }}")
    first, _ = await cycles(isolated_db, llm_server, recipe=parse(text), turns=1, variations=1)
    assert first.status == "partial" and len(first.messages) == 2
    assert first.failed_steps["metadata"]["reason"] == "template_error"
    assert "does not end" in first.failed_steps["metadata"]["detail"]
    assert "1,000,000" in first.failed_steps["variations"]["detail"]
