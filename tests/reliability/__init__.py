"""Issue 9: reliability and security corpus, CLI robustness, atomic writes, concurrency and fuzzing."""
