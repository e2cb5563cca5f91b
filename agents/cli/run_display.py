"""How a run shows itself: a live rich panel, JSON lines for scripts, or nothing until the end."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agents.cli.common import console, err_console
from agents.cli.output import literal
from agents.swarm import Swarm


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else (f"{seconds // 60}:{seconds % 60:02d}")
    )


def _conversations(counts: dict[str, Any], run_id: str) -> str:
    partial = counts.get("conversations_partial", 0)
    shown = str(counts.get("conversations", 0))
    return shown + (f" ({partial} partial: a late step failed; swarm run --resume {run_id})" if partial else "")


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:5]) or "none"


def summary_table(record: dict[str, Any]) -> Table:
    counts = record.get("counts") or {}
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("run", f"{record['run_id']}  [{record['status']}]"),
        ("personas", str(counts.get("personas", record.get("personas")))),
        ("conversations", _conversations(counts, record["run_id"])),
        ("quality", _quality(counts)),
        *([("judges", _judges(counts["judge_scores"]))] if counts.get("judge_scores") else []),
        *([("diversity", _diversity(counts["diversity"]))] if counts.get("diversity") else []),
        ("units failed", f"{counts.get('units_failed', 0)} ({_reasons(counts.get('units_failed_by_reason', {}))})"),
        (
            "pages",
            f"{counts.get('pages_ok', 0)} ok, {counts.get('pages_failed', 0)} failed "
            f"({_reasons(counts.get('pages_failed_by_reason', {}))})",
        ),
        (
            "LLM calls",
            f"{counts.get('llm_calls', 0)} ({counts.get('llm_calls_cached', 0)} from the cache; failed: "
            f"{_reasons(counts.get('llm_calls_failed_by_reason', {}))})",
        ),
        ("tokens", f"{counts.get('prompt_tokens', 0):,} in, {counts.get('completion_tokens', 0):,} out"),
        ("cost", f"${counts.get('cost_usd', 0.0):.4f} (estimated)"),
        ("time", f"{_duration(record.get('elapsed_s'))} over {record.get('sessions') or 1} session(s)"),
    ]
    if record.get("error"):
        rows.append(("stopped by", str(record["error"])))
    for key, value in rows:
        table.add_row(key, literal(value))  # the error may quote a page or a model
    return table


def _quality(counts: dict[str, Any]) -> str:
    """How many conversations pass every blocking check, and how many fail each check."""
    failed = {k: v for k, v in (counts.get("quality_failed_by_check") or {}).items() if v}
    passing = f"{counts.get('conversations_passing', 0)} of {counts.get('conversations', 0)} pass every check"
    return passing + (f"; failed: {_reasons(failed)}" if failed else "")


def _judges(scores: dict[str, Any]) -> str:
    """Each judge's scores (0–1) as a distribution, and how many passed its threshold."""
    return "; ".join(
        f"{name} mean {s['mean']:.2f} (quartiles {' / '.join(f'{q:.2f}' for q in s['quartiles'])}), "
        f"{s['passed']} of {s['n']} pass"
        for name, s in scores.items()
    )


_FIGURES = {
    "distinct_1": "distinct-1 {:.2f}",
    "distinct_2": "distinct-2 {:.2f}",
    "near_duplicate_rate": "near-duplicates {:.0%}",
    "embedding_distance": "embedding distance {:.2f}",
    "vendi_score": "Vendi score {:.1f}",
    "persona_similarity_correlation": "persona/conversation similarity r {:+.2f}",
}


def _diversity(figures: dict[str, float | None]) -> str:
    """The run's diversity figures (swarm eval), in a fixed order; one that could not be worked out is –."""
    shown = []
    for metric, form in _FIGURES.items():
        if metric in figures:
            value = figures[metric]
            shown.append(form.format(value) if value is not None else form.split(" {")[0] + " –")
    return ", ".join(shown)


class LiveDisplay:
    """A panel redrawn twice a second: agents, pages, conversations, tokens/s, cost, errors, ETA."""

    def __init__(self) -> None:
        self.live: Live | None = None

    def started(self, run_id: str, swarm: Swarm, resumed: bool) -> None:
        verb = "resuming" if resumed else "started"
        console.print(
            f"run {run_id} {verb}: {swarm.progress.personas} personas × {swarm.cycles} cycle(s)", markup=False
        )
        self.live = Live(self._render(swarm), console=console, refresh_per_second=2, transient=True)
        self.live.start()

    def _render(self, swarm: Swarm) -> Group:
        s = swarm.snapshot()
        head = Text.assemble(
            (f"{s['conversations']}/{s['units']} conversations", "bold green"),
            f"  agents {s['agents_active']}  personas {s['personas_done']}/{s['personas']}"
            f"  pages {s['pages_ok']} ok / {sum(s['pages_failed'].values())} failed"
            f"  {s['tokens_per_s']:.0f} tok/s  ${s['cost_usd']:.4f}  ETA {_duration(s['eta_s'])}"
            f"  [{_duration(s['elapsed_s'])}]",
        )
        lines = [head]
        if s["units_failed"] or s["llm_failures"] or s["pages_failed"]:
            lines.append(
                Text(
                    f"errors: units {_reasons(s['units_failed'])}; llm {_reasons(s['llm_failures'])}; "
                    f"pages {_reasons(s['pages_failed'])}",
                    style="red",
                )
            )
        if s["stopping"]:
            lines.append(
                Text(
                    f"stopping: {s['stopping']} — finishing units in flight (Ctrl-C again to stop now)", style="yellow"
                )
            )
        return Group(*lines)

    def tick(self, swarm: Swarm) -> None:
        if self.live is not None:
            self.live.update(self._render(swarm))

    def stopping(self, swarm: Swarm, second: bool) -> None:
        if self.live is not None:
            self.live.update(self._render(swarm))
        if second:
            err_console.print("stopping now: abandoning the units in flight …")

    def finished(self, record: dict[str, Any]) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        console.print(summary_table(record))


class JsonLinesDisplay:
    """One JSON object per line on stdout: `started`, `progress` every `interval` s, `stopping`, `finished`."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval, self._last = interval, 0.0

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps({"event": event, **payload}, default=str) + "\n")
        sys.stdout.flush()

    def started(self, run_id: str, swarm: Swarm, resumed: bool) -> None:
        self._emit("started", {"run_id": run_id, "resumed": resumed, "personas": swarm.progress.personas})

    def tick(self, swarm: Swarm) -> None:
        if time.monotonic() - self._last >= self.interval:
            self._last = time.monotonic()
            self._emit("progress", swarm.snapshot())

    def stopping(self, swarm: Swarm, second: bool) -> None:
        self._emit("stopping", {"run_id": swarm.run_id, "immediate": second})

    def finished(self, record: dict[str, Any]) -> None:
        self._emit("finished", {k: v for k, v in record.items() if k != "config"})


class QuietDisplay:
    """Nothing while running but a line when asked to stop; the summary at the end."""

    def started(self, run_id: str, swarm: Swarm, resumed: bool) -> None:
        pass

    def tick(self, swarm: Swarm) -> None:
        pass

    def stopping(self, swarm: Swarm, second: bool) -> None:
        if second:
            err_console.print("stopping now: abandoning the units in flight …")
        else:
            err_console.print(f"stopping: no new units; waiting up to {swarm.grace:g}s for those in flight "
                              "(Ctrl-C again to stop now)")  # fmt: skip

    def finished(self, record: dict[str, Any]) -> None:
        console.print(summary_table(record))
