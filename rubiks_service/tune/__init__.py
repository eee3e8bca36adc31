"""Sweeps over shift budget, lambda and model size with Ray Tune: the search space, the sweep, and the
body of one trial (a tracked training run reporting to Tune)."""
