"""`swarm serve` and `swarm report`, driven as a user would: a real server process on loopback, Debian's
Chromium through Playwright, and the real runs the test LLM server and test website make."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from agents.web.pages import cited
from agents.web.security import is_loopback
from tests.support.cli import RUN, Cli, swarm_subprocess
from tests.support.llm_server import LLMServer
from tests.support.runs import rows
from tests.support.web import chromium, served, wait_until

HOSTILE = 'A beekeeper <script>window.pwned=1</script> who writes <img src=x onerror="window.pwned=2"> notes'
TOKEN = "0123456789abcdef0123456789abcdef"
HOSTILE_ID = "hostile/1?x=1#y"  # a source's own id: a path, a query and a fragment, were it not encoded


def _run(cli: Cli, tmp_path: Path, *extra: str) -> str:
    """A finished run of three personas, the hostile one among them."""
    hostile = tmp_path / "hostile.jsonl"
    record = {"id": HOSTILE_ID, "persona": HOSTILE, "occupation": "beekeeper", "age": 47, "country": "Wales"}
    hostile.write_text(json.dumps(record) + "\n")
    code, _, err = cli("personas", "import", str(hostile))
    assert code == 0, err
    where = f"persona_id IN ('{HOSTILE_ID}', 'sample-001', 'sample-002')"
    code, out, err = cli(*RUN, "-n", "3", "--turns", "2", "--quiet", "--where", where, *extra)
    assert code == 0, err
    return out.strip().splitlines()[-1]


def test_the_view_shows_a_run_its_conversations_as_chats_and_the_pages_they_cite(
    cli: Cli, swarm_env: dict[str, str], tmp_path: Path
) -> None:
    run_id = _run(cli, tmp_path)
    with served() as base, chromium() as browser:
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(base)
        page.get_by_role("link", name=run_id).click()
        assert page.locator("[data-count=conversations]").inner_text() == "3"
        page.wait_for_load_state("networkidle")
        charts = page.eval_on_selector_all("img[data-chart]", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
        assert len(charts) == 4 and all(charts), "every chart is drawn"

        page.get_by_role("link", name="its conversations").click()
        assert page.locator("ol.cards > li").count() == 3
        # a persona attribute is a facet: choosing a value keeps only its conversations
        page.locator("[data-facet='persona.occupation']").get_by_role("link", name="beekeeper").click()
        assert "1 found" in page.locator(".pager").first.inner_text()
        assert page.locator("[data-facet='persona.occupation'] li.on").inner_text().startswith("beekeeper")

        page.locator("ol.cards a.title").first.click()
        # the persona's and the model's text are shown as text: nothing in them runs
        assert HOSTILE in page.locator(".persona-card").inner_text()
        assert page.evaluate("window.pwned") is None
        conversation = page.url
        page.locator(".persona-card a").click()
        assert page.url.startswith(f"{base}/persona?id=hostile")
        assert page.locator("h1").inner_text() == f"Persona {HOSTILE_ID}"
        assert page.locator(".persona-text").inner_text() == HOSTILE
        page.goto(conversation)
        citation = page.locator(".turn.assistant a.cite").first
        title = citation.get_attribute("title")
        citation.click()
        assert page.url.startswith(f"{base}/pages/pg_")
        assert page.locator("h1").inner_text() == title
        assert page.locator("pre.page-text").inner_text().strip(), "the page's stored text is shown"
        assert problems == [], problems  # a Content-Security-Policy refusal would be one


def test_the_sql_box_reads_and_refuses_writes_files_and_the_network(
    cli: Cli, swarm_env: dict[str, str], tmp_path: Path, website: Any, isolated_db: Path
) -> None:
    _run(cli, tmp_path)
    personas = rows(isolated_db, "SELECT count(*) FROM personas")[0][0]
    with served() as base, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{base}/sql")
        for sql, said in [
            ("DELETE FROM personas", "read-only"),
            ("SELECT * FROM read_text('/etc/passwd')", "may not read files or the network"),
            (f"SELECT * FROM read_csv('{website.base}/robots.txt')", "may not read files or the network"),
            ("SET enable_external_access = true", "read-only"),
        ]:
            page.locator("textarea[name=q]").fill(sql)
            page.get_by_role("button", name="Run").click()
            assert said in page.locator("#sql-error").inner_text(), sql
        assert "/robots.txt" not in website.paths()[-1:], "the website was not asked"
        page.locator("textarea[name=q]").fill("SELECT count(*) AS n FROM personas")
        page.get_by_role("button", name="Run").click()
        assert page.locator("#sql-result td").inner_text() == str(personas)

        answer = httpx.get(f"{base}/api/sql", params={"q": "SELECT 1 AS x, 'a' AS y"})
        assert answer.status_code == 200 and answer.json() == {"columns": ["x", "y"], "rows": [[1, "a"]]}
        refused = httpx.get(f"{base}/api/sql", params={"q": "DROP TABLE personas"})
        assert refused.status_code == 400 and "read-only" in refused.json()["error"]
        broken = httpx.get(f"{base}/api/sql", params={"q": "SELEC 1"})
        assert broken.status_code == 400 and "syntax" in broken.json()["error"].lower()
        table = httpx.get(
            f"{base}/api/sql", params={"q": "SELECT persona_id FROM personas ORDER BY 1", "format": "csv"}
        )
        assert table.headers["content-type"].startswith("text/csv") and table.text.splitlines()[0] == "persona_id"
        assert len(table.text.splitlines()) == personas + 1
        many = httpx.get(f"{base}/api/sql", params={"q": "SELECT * FROM range(100005)"}, timeout=60).json()
        assert len(many["rows"]) == 100_000 and many["truncated"] is True
        # 2 GB of text asked for: the answer stops at 50 million characters
        big = httpx.get(
            f"{base}/api/sql", params={"q": "SELECT repeat('x', 20000) AS s FROM range(100000)"}, timeout=60
        )
        assert big.json()["truncated"] is True and len(big.content) < 60_000_000
        odd = httpx.get(f"{base}/api/sql", params={"q": "SELECT 'nan'::DOUBLE AS x, 'inf'::DOUBLE AS y"})
        assert odd.status_code == 200 and json.loads(odd.text) == {"columns": ["x", "y"], "rows": [[None, None]]}
    assert rows(isolated_db, "SELECT count(*) FROM personas")[0][0] == personas


def test_a_running_runs_page_follows_it_without_reloading(
    swarm_env: dict[str, str], llm_server: LLMServer, isolated_db: Path
) -> None:
    llm_server.latency = 0.25
    exe = Path(sys.executable).parent / "swarm"
    args = [*RUN, "-n", "5", "--turns", "2", "--concurrency", "1", "--quiet"]
    process = subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **swarm_env}, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        with served() as base, chromium() as browser:
            found: list[Any] = []

            def started() -> bool:
                answer = httpx.get(f"{base}/api/sql", params={"q": "SELECT run_id FROM runs"})
                found[:] = answer.json().get("rows", []) if answer.status_code == 200 else []
                return bool(found)

            wait_until(started, 60, "the run to start")
            run_id = found[0][0]
            page = browser.new_page()
            page.goto(f"{base}/runs/{run_id}")
            assert page.locator("[data-field=shown_status]").inner_text() == "running"
            before = page.locator("[data-count=llm_calls]").inner_text()
            page.evaluate("window.stayed = true")
            calls = page.locator("[data-count=llm_calls]")
            wait_until(lambda: calls.inner_text() != before, 60, "the figures to change")
            assert page.evaluate("window.stayed") is True, "the figures changed in place, the page did not reload"
            assert process.wait(timeout=120) == 0
            status = page.locator("[data-field=shown_status]")
            wait_until(lambda: status.inner_text() == "finished", 30, "the run to show as finished")
            assert page.locator("[data-count=conversations]").inner_text() == "5"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def test_serve_binds_loopback_unless_a_token_guards_it(
    cli: Cli, swarm_env: dict[str, str], tmp_path: Path, isolated_db: Path
) -> None:
    refused = swarm_subprocess("serve", "--host", "0.0.0.0")
    assert refused.returncode == 2 and "--token" in refused.stderr
    short = swarm_subprocess("serve", "--token", "abc")
    assert short.returncode == 2 and "16 characters" in short.stderr
    missing = swarm_subprocess("serve", env={"SWARM_DB": str(tmp_path / "none.duckdb")})
    assert missing.returncode == 1 and "no database at" in missing.stderr

    with served("--token", TOKEN) as base, httpx.Client(base_url=base, follow_redirects=False) as client:
        assert client.get("/").status_code == 401
        assert client.get("/api/sql", params={"q": "SELECT 1"}).status_code == 401
        assert client.get("/", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/", headers={"authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
        entered = client.get("/conversations", params={"token": TOKEN})
        assert entered.status_code == 303 and entered.headers["location"] == "/conversations"
        assert "httponly" in entered.headers["set-cookie"].lower()
        answer = client.get("/conversations")  # the cookie from now on
        assert answer.status_code == 200
        headers = answer.headers
        assert "script-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
        # a page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) is not answered
        rebound = client.get("/", headers={"host": "attacker.example", "authorization": f"Bearer {TOKEN}"})
        assert rebound.status_code == 400
        assert client.get("/", headers={"authorization": f"bearer {TOKEN}"}).status_code == 200
        assert f"swarm_token_{base.rsplit(':', 1)[1]}=" in entered.headers["set-cookie"], "a cookie a server"
        # a path that starts "//" must not come back as a Location of another host's
        elsewhere = client.get(httpx.URL(base).copy_with(raw_path=f"//attacker.example/x?token={TOKEN}".encode()))
        assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/attacker.example/x"


def test_requests_from_another_sites_page_are_refused(cli: Cli, swarm_env: dict[str, str]) -> None:
    """A page of any website can make the browser send requests to 127.0.0.1 and time the answers:
    the view answers only its own pages, and what a person or a script asks for directly."""
    with served() as base:
        for where, status in [("cross-site", 403), ("same-site", 403), ("same-origin", 200), ("none", 200)]:
            answer = httpx.get(f"{base}/api/sql", params={"q": "SELECT 1"}, headers={"sec-fetch-site": where})
            assert answer.status_code == status, where
        assert httpx.get(f"{base}/api/sql", params={"q": "SELECT 1"}).status_code == 200, "curl sends none"


def test_the_report_is_one_file_that_shows_the_run_offline(cli: Cli, swarm_env: dict[str, str], tmp_path: Path) -> None:
    run_id = _run(cli, tmp_path)
    code, out, err = cli("eval", "--run", run_id, "--no-embeddings")
    assert code == 0, err
    target = tmp_path / "report.html"
    code, out, err = cli("report", "-o", str(target))
    assert code == 0, err
    assert f"run {run_id}" in out
    html = target.read_text()
    assert "<script" not in html.replace("&lt;script", ""), "no script in the file (the persona's is escaped)"
    code, _, err = cli("report", "--run", "run_nope")
    assert code == 1 and "no run run_nope" in err
    with chromium() as browser:
        _look_offline(browser, target, run_id)


def _look_offline(browser: Any, target: Path, run_id: str) -> None:
    page = browser.new_page()
    asked: list[str] = []
    page.route("**/*", lambda route: (asked.append(route.request.url), route.continue_())[1])
    page.goto(target.as_uri())
    assert asked == [target.as_uri()], "nothing but the file itself is fetched"
    assert page.locator("h1").inner_text().startswith(f"Run {run_id}")
    assert page.eval_on_selector_all(".charts img", "imgs => imgs.map(i => i.naturalWidth > 0)") == [True] * 4
    assert page.locator("article.report-conversation").count() == 3, "the best and the worst: all three here"
    assert page.evaluate("window.pwned") is None
    link = page.locator("article.report-conversation a.cite").first
    assert link.get_attribute("href", timeout=5000).startswith("#cv_"), "citations lead into the file"


def test_citations_are_links_and_the_rest_is_text() -> None:
    numbered = {1: {"page_id": "pg_1", "title": 'A "quoted" <title>'}}
    shown = str(cited("Bees <b>swarm</b> in May [1]; see [2].", numbered))
    assert shown == (
        'Bees &lt;b&gt;swarm&lt;/b&gt; in May <a class="cite" href="/pages/pg_1" title="A &#34;quoted&#34; '
        '&lt;title&gt;">[1]</a>; see <span class="cite missing" title="no source has this number">[2]</span>.'
    )
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("example.org")


def test_odd_rows_are_shown_not_errors(cli: Cli, swarm_env: dict[str, str], tmp_path: Path, isolated_db: Path) -> None:
    """Rows a recipe of one's own, a hand edit or a hostile source can make: each page still answers."""
    run_id = _run(cli, tmp_path)
    first, second, third = (r[0] for r in rows(isolated_db, "SELECT conversation_id FROM conversations ORDER BY 1"))
    con = duckdb.connect(str(isolated_db))
    con.execute(
        'UPDATE conversations SET messages = \'[{"role": "user", "content": 42}, 5, {"role": "assistant", '
        '"content": "He said \\"ad hominem\\" twice [1]."}]\', metadata = \'["a", "b"]\', outputs = \'["x"]\', '
        "sources = '7' WHERE conversation_id = ?",
        [first],
    )
    con.execute(
        'UPDATE conversations SET metadata = \'{"tags": ["dup", "dup", "dup"], "nest": {"x": 1}}\' '
        "WHERE conversation_id = ?",
        [second],
    )
    con.execute("DELETE FROM quality WHERE conversation_id = ? AND check_name = 'language'", [third])
    con.execute("UPDATE personas SET age = 9223372036854775807 WHERE persona_id = 'sample-001'")
    con.execute("UPDATE llm_calls SET latency_ms = 'nan'::DOUBLE WHERE call_id = (SELECT min(call_id) FROM llm_calls)")
    con.close()
    with served() as base, httpx.Client(base_url=base) as client:
        shown = client.get(f"/conversations/{first}")
        assert shown.status_code == 200 and "42" in shown.text
        nested = client.get(f"/conversations/{second}")
        assert nested.status_code == 200 and "{&#34;x&#34;: 1}" in nested.text, "a nested object shows as JSON"
        assert client.get("/personas").status_code == 200
        assert client.get(f"/api/runs/{run_id}").status_code == 200
        # the search reads the turns' text, quotes and all, and not the JSON around it
        found = client.get("/conversations", params={"q": 'said "ad hominem"'})
        assert "1 found" in found.text
        assert "0 found" in client.get("/conversations", params={"q": '"content"'}).text
        # passed as swarm export has it: every check ran; one that lacks a check is only partly checked
        partly = client.get("/conversations", params={"quality": "partly checked"})
        assert "1 found" in partly.text and third in partly.text
        # a tag a conversation has three times counts it once
        tagged = client.get("/conversations", params={"tag": "dup"})
        assert "1 found" in tagged.text and re.search(r">dup</a> <span class=\"n\">1</span>", tagged.text)
    code, _, err = cli("report", "--run", run_id, "-o", str(tmp_path / "odd.html"))
    assert code == 0, err


@pytest.mark.slow
def test_one_sql_query_at_a_time_each_stopped_after_its_limit(cli: Cli, swarm_env: dict[str, str]) -> None:
    endless = "SELECT sum(hash(a.range)) FROM range(100000000000) a"
    with served() as base:
        answers: list[httpx.Response] = []
        first = threading.Thread(
            target=lambda: answers.append(httpx.get(f"{base}/api/sql", params={"q": endless}, timeout=60))
        )
        first.start()
        time.sleep(1)
        second = httpx.get(f"{base}/api/sql", params={"q": "SELECT 1"})
        assert second.status_code == 503 and "another SQL query" in second.json()["error"]
        first.join(timeout=60)
        assert answers[0].status_code == 400 and "stopped after 10 s" in answers[0].json()["error"]
        assert httpx.get(f"{base}/api/sql", params={"q": "SELECT 1"}).status_code == 200
