"""Training: stage 1 (gold trajectories, self-taught sampling, SFT) and stage 2 (multi-turn GRPO).

Importing this package is cheap: torch, transformers and TRL are imported by the functions that train.
"""
