"""`repochat review` and the pre-commit hook: the change, its context, the model's findings, the report."""
