"""The inference engine: model registry, GGUF metadata, memory planner, llama.cpp context, KV page store, sessions.

Submodules are imported where needed: reading metadata or planning must not pay for loading llama.cpp.
"""
