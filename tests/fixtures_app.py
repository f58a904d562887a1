"""Fixtures for the running Gradio app (owned by the browser tests)."""
