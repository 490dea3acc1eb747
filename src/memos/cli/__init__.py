"""The ``memos`` command line."""
