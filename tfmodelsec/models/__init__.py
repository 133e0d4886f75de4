"""Model zoo, safe loading (:class:`Victim`) and training."""

from tfmodelsec.models.fit import FitCheck, check_fit
from tfmodelsec.models.io import Victim, as_victim, load_victim, save_model, scan_model_config
from tfmodelsec.models.train import TrainResult, fit_seeded, train_classifier
from tfmodelsec.models.zoo import MODELS, build_model, c3f2, lenet5, mlp, resnet18, small_cnn

__all__ = [
    "FitCheck",
    "MODELS",
    "TrainResult",
    "Victim",
    "as_victim",
    "build_model",
    "c3f2",
    "check_fit",
    "fit_seeded",
    "lenet5",
    "load_victim",
    "mlp",
    "resnet18",
    "save_model",
    "scan_model_config",
    "small_cnn",
    "train_classifier",
]
