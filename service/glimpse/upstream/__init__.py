"""The real LLM behind the proxy: the `openai` SDK client, the relayed SSE stream, its errors, its span."""
