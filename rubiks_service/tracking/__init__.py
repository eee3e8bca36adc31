"""MLflow tracking: the tracked training run (`tracked_training.py`, behind `rubiks train` and every sweep
trial), MLflow runs and models, a sweep's results and the accuracy-vs-cost Pareto frontier."""
