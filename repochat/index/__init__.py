"""Indexing: walking, chunking, symbols, embeddings and the LanceDB store."""
