"""Hand-written plausible learner bugs, one module per exercise marker (``MUTANTS = [...]``)."""
