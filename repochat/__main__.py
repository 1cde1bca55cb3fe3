"""`python -m repochat` runs the command line."""

from .cli.main import main

main()
