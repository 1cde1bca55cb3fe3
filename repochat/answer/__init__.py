"""`repochat ask`: the question, the context (whole repository or retrieved excerpts), the model's answer, its citations
and references."""
