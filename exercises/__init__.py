"""Graded exercises: re-implement one rule of refimpl and let one command grade it.

Each ``exercises/NN-topic/`` folder holds a README (the task, the rule, the book section it
builds on), a *starter* file and the graded checks. The starter is a copy of a refimpl module in
which the body of one marked function (``# [exercise: NAME] begin`` … ``end``) is replaced by
``raise NotImplementedError``; starters are generated, never edited by hand in the project
(``python -m exercises._grading.starters --write``).

Grading plugs the learner's function into refimpl in place of the reference one and runs the
exercise's checks: refimpl's conformance checks, property tests against dumb oracles, and
simulator scenarios over many seeds. Run ``python -m exercises.grade [name …]``.
"""
