"""Sweeps over shift budget, lambda and model size with Ray Tune; the tracked training trial."""
