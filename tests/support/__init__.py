"""What the tests share: the loopback servers (a fault-injecting website, an OpenAI-compatible LLM
server), driving the CLI, and reading what a crawl or a run wrote. The benchmarks use the servers too
(`python -m benchmarks.…` from the checkout)."""
