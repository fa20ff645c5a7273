"""Optimizers, the course update rules and the Solver training loop."""
