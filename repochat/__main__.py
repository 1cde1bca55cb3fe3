"""`python -m repochat` runs the command line."""

from .cli import main

main()
