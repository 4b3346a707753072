"""The lab: the procedural audio-visual benchmark, the CPU demos and the shortcut experiment, with their
recipes as package data (``recipes/``).

A client of ``echoink`` like any user's script (open-r1's ``grpo.py`` to TRL): it calls the library's
public paths and changes nothing in it; the library never imports it. Its recipes hold an echoink
``Config`` plus the lab's own ``demo:`` section (``echoink_lab.recipe``).

synth*.py: the benchmark (scene planning, media, the shortcut family, video clips); demo.py: the main
CPU job (``echoink demo``); shortcut_experiment.py: does GRPO take a visual shortcut, and does
grounding stop it.
"""
