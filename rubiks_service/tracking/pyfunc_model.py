"""The MLflow pyfunc of a trained rubiks-service model, logged as code ("models from code":
no pickled Python object in the model; `tracking/mlflow_model.py` logs it).

Input: float32 clips normalised as in evaluation (ImageNet mean/std), (N, T, 3, S, S), or
(N, V, T, 3, S, S) with V views averaged (the 2-clip protocol). Output: a DataFrame of class
probabilities, one column per class. The weights are read with weights_only=True. Any other input
is refused with its shape and the expected one (never its values: a clip is megabytes of numbers).
"""
import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class RubiksVideoClassifier(PythonModel):
    def load_context(self, context):
        from rubiks_service.models.inference import inference_model
        from rubiks_service.train.trainer import load_trained_model

        model, cfg, self.classes = load_trained_model(context.artifacts["checkpoint"])
        self.clip_shape = (cfg.data.segments, 3, cfg.data.crop_size, cfg.data.crop_size)
        self.model = inference_model(model)  # eval mode, BN folded, RS-AQ as integer shifts

    def predict(self, context, model_input, params=None):
        import torch

        from rubiks_service.train.evaluation import view_averaged_logits

        clips = torch.as_tensor(check_clips(model_input, self.clip_shape))
        if clips.dim() == 5:
            clips = clips[:, None]  # one view
        with torch.no_grad():
            probs = view_averaged_logits(self.model, clips).softmax(dim=1).double().numpy()
        return pd.DataFrame(probs, columns=self.classes)


def check_clips(model_input, clip_shape: tuple) -> np.ndarray:
    """`model_input` as float32 (N, T, 3, S, S) or (N, V, T, 3, S, S); a ValueError naming the shapes otherwise."""
    t, c, s, _ = clip_shape
    expected = f"float32 clips (N, {t}, {c}, {s}, {s}) or (N, V, {t}, {c}, {s}, {s})"
    if isinstance(model_input, pd.DataFrame):
        raise ValueError(f"got a DataFrame of shape {model_input.shape}; expected a numpy array of {expected}")
    try:
        clips = np.asarray(model_input, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"got a {type(model_input).__name__} that is not a numeric array; expected {expected}") from None
    if clips.ndim not in (5, 6) or tuple(clips.shape[-4:]) != tuple(clip_shape) or 0 in clips.shape:
        raise ValueError(f"got an input of shape {tuple(clips.shape)}; expected {expected}")
    return clips


mlflow.models.set_model(RubiksVideoClassifier())
