"""Screenshots of the web view's main pages, for docs/web.md.

Starts `swarm serve` on a database (./swarm.duckdb, as `./quickstart` leaves it, unless --db says
otherwise), opens its latest run, a conversation with the most checks passed, the lists and the SQL
box in Debian's Chromium, and writes a PNG of each to docs/img/.

    .venv/bin/python scripts/screenshots.py
    .venv/bin/python scripts/screenshots.py --db other.duckdb --out /tmp/shots
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import duckdb
from playwright.sync_api import sync_playwright

from crawler.render import find_chromium

REPO = Path(__file__).resolve().parent.parent
SWARM = Path(sys.executable).parent / "swarm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=Path("swarm.duckdb"))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    if not args.db.exists():
        raise SystemExit(f"no database at {args.db}: run ./quickstart first, or give --db")
    con = duckdb.connect(str(args.db), read_only=True)
    try:
        found = con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
        if not found:
            raise SystemExit(f"{args.db} has no run yet: swarm demo makes one")
        run_id = str(found[0])
        best = con.execute(
            "SELECT c.conversation_id FROM conversations c LEFT JOIN quality q USING (conversation_id) "
            "WHERE c.run_id = ? GROUP BY 1 ORDER BY count(*) FILTER (WHERE q.passed) DESC, 1 LIMIT 1",
            [run_id],
        ).fetchone()
    finally:
        con.close()
    views = {
        "web-run": f"/runs/{run_id}",
        "web-conversations": f"/conversations?run={quote(run_id)}",
        "web-conversation": f"/conversations/{best[0]}" if best else None,
        "web-personas": "/personas",
        "web-sql": "/sql?q="
        + quote(
            "SELECT check_name, count(*) FILTER (WHERE passed) AS passed, count(*) AS n "
            "FROM quality GROUP BY 1 ORDER BY 1"
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([str(SWARM), "--db", str(args.db), "serve", "--port", "0"], stdout=subprocess.PIPE,
                              text=True, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        assert server.stdout is not None
        base = re.search(r"http://[^\s/]+", server.stdout.readline())
        if not base:
            raise SystemExit("swarm serve did not start")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=find_chromium())
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            for name, path in views.items():
                if path is None:
                    continue
                page.goto(base.group(0) + path)
                page.wait_for_load_state("networkidle")
                target = args.out / f"{name}.png"
                page.screenshot(path=str(target), full_page=name == "web-run")  # the run's charts are below
                print(f"wrote {target}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
