"""Typed domain objects shared by every layer."""
