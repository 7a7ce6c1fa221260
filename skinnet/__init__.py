"""SkinNet: skin lesion segmentation in dermoscopy images (Vesal, Ravikumar, Maier, 2018)."""

import skinnet._opencv  # noqa: F401 - first, so that loading OpenCV leaves os.environ unchanged
from skinnet.config import Config, load_config
from skinnet.data.io import read_image
from skinnet.inference.ensemble import Ensemble
from skinnet.inference.segmenter import Segmenter
from skinnet.losses import SoftDiceLoss, soft_dice_loss
from skinnet.metrics import image_metrics, mean_metrics
from skinnet.networks import SkinNet, UNet, build_model
from skinnet.networks.files import load_model, save_weights
from skinnet.version import __version__

__all__ = [
    "Config",
    "Ensemble",
    "Segmenter",
    "SkinNet",
    "SoftDiceLoss",
    "UNet",
    "__version__",
    "build_model",
    "image_metrics",
    "load_config",
    "load_model",
    "mean_metrics",
    "read_image",
    "save_weights",
    "soft_dice_loss",
]
