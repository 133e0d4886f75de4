"""Model zoo, safe loading (:class:`Victim`) and training."""

from tfmodelsec.models.align import align_data
from tfmodelsec.models.fit import FitCheck, check_fit
from tfmodelsec.models.io import Victim, as_victim, load_victim, save_model, scan_model_config
from tfmodelsec.models.ranges import detect_input_range, input_bounds, parse_input_range
from tfmodelsec.models.train import TrainResult, fit_seeded, train_classifier
from tfmodelsec.models.zoo import MODELS, build_model, c3f2, lenet5, mlp, resnet18, small_cnn

__all__ = [
    "FitCheck",
    "MODELS",
    "TrainResult",
    "Victim",
    "align_data",
    "as_victim",
    "build_model",
    "c3f2",
    "check_fit",
    "detect_input_range",
    "fit_seeded",
    "input_bounds",
    "lenet5",
    "load_victim",
    "mlp",
    "parse_input_range",
    "resnet18",
    "save_model",
    "scan_model_config",
    "small_cnn",
    "train_classifier",
]
