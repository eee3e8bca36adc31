"""A trained model as a product: resolving MODEL (a checkpoint file, `runs:/…`, `models:/…`),
classifying videos (`rubiks predict`) and exporting (`rubiks export`). Sits above tracking:
it reads MLflow models but only ever loads their weights file (weights_only=True)."""
