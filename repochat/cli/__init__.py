"""The `repochat` command line: one module per command group, a thin layer over the library.

The entry point is repochat.cli.main:main."""
