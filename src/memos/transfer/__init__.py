"""Moving memories between stores and out to other formats (``memos export`` / ``import``).

``jsonl``: the lossless, verifiable stream of a store's records (any adapter to
any adapter). ``memcube``: the seed's MemCube directory, for tools that read
MemOS dumps (export only). The records themselves come from the store port
(``MemoryStore.export_cube`` / ``import_records``; see ``memos.store.records``).
"""
