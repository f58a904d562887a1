"""Fixtures for the local OpenAI-compatible LLM server (owned by the LLM tests)."""
