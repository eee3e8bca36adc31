"""MLflow tracking of runs and sweeps, and the accuracy-vs-cost Pareto frontier."""
