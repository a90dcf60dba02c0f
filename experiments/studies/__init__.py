"""One-off studies: each module's docstring states the question it answers and the command that runs it."""
