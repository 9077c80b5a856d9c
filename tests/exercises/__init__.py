"""Proof that the exercise graders grade (reference 100 %, starters 0 %, mutants caught)."""
