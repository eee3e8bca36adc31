"""The MLflow pyfunc of a trained rubiks-service model, logged as code ("models from code":
no pickled Python object in the model; `tracking/mlflow_model.py` logs it).

Input: float32 clips normalised as in evaluation (ImageNet mean/std), (N, T, 3, S, S), or
(N, V, T, 3, S, S) with V views averaged (the 2-clip protocol). Output: a DataFrame of class
probabilities, one column per class. The weights are read with weights_only=True.
"""
import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class RubiksVideoClassifier(PythonModel):
    def load_context(self, context):
        from rubiks_service.models.inference import inference_model
        from rubiks_service.train.trainer import load_trained_model

        model, _, self.classes = load_trained_model(context.artifacts["checkpoint"])
        self.model = inference_model(model)  # eval mode, BN folded, RS-AQ as integer shifts

    def predict(self, context, model_input, params=None):
        import torch

        from rubiks_service.train.evaluation import view_averaged_logits

        clips = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        if clips.dim() == 5:
            clips = clips[:, None]  # one view
        with torch.no_grad():
            probs = view_averaged_logits(self.model, clips).softmax(dim=1).double().numpy()
        return pd.DataFrame(probs, columns=self.classes)


mlflow.models.set_model(RubiksVideoClassifier())
