"""The embedded model's server process: llama-cpp-python's OpenAI-compatible server, which exits when
the process that started it is gone.

    python -m agents.llm.local_server --model FILE --port N ...   (the arguments of llama_cpp.server)

The server runs in its own session, so a Ctrl-C at the terminal reaches the run (which stops it in
order) and not the server mid-answer. That also means nothing would stop it after a kill -9 of the
run; so the parent holds the write end of our stdin, and when that closes (the parent exited, however
it exited) we exit too. A pipe closes on any death, unlike PR_SET_PDEATHSIG, which fires when the
parent's *thread* ends and is Linux-only.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading


def _exit_with_parent() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)  # the parent is gone: nobody is left to answer


MEAN_POOLING = "--mean-pooling"  # ours, not llama_cpp.server's: taken out before it reads the arguments


def _mean_pooling() -> None:
    """Embeddings pooled by llama.cpp itself, one vector a text. The server has no setting for it, and a
    model file that declares no pooling (SmolLM2's) makes it answer a vector a token: megabytes a text."""
    import llama_cpp

    original = llama_cpp.Llama.__init__

    def init(self: llama_cpp.Llama, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("pooling_type", llama_cpp.LLAMA_POOLING_TYPE_MEAN)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    llama_cpp.Llama.__init__ = init  # type: ignore[method-assign]


def main() -> None:
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()
    if MEAN_POOLING in sys.argv:
        sys.argv.remove(MEAN_POOLING)
        _mean_pooling()
    sys.argv = ["llama_cpp.server", *sys.argv[1:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
