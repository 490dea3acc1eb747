"""Retrieval: hybrid vector + BM25 search with fusion, scoring and dedup."""
