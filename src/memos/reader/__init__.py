"""Readers turn raw messages into memory items (fast: no model; fine: LLM)."""
