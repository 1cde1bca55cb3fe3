"""Language knowledge as data: grammars/<language>/language.toml, chunks.scm and tags.scm."""
