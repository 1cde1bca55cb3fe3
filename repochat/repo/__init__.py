"""Which files of a repository exist and may be read."""
