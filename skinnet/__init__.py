"""SkinNet: skin lesion segmentation in dermoscopy images (Vesal, Ravikumar, Maier, 2018)."""

from skinnet.config import Config, load_config
from skinnet.inference.segmenter import Segmenter
from skinnet.losses import SoftDiceLoss, soft_dice_loss
from skinnet.metrics import image_metrics, mean_metrics
from skinnet.networks import SkinNet, UNet, build_model
from skinnet.networks.files import load_model, save_weights

__version__ = "0.1.0"

__all__ = [
    "Config",
    "Segmenter",
    "SkinNet",
    "SoftDiceLoss",
    "UNet",
    "build_model",
    "image_metrics",
    "load_config",
    "load_model",
    "mean_metrics",
    "save_weights",
    "soft_dice_loss",
]
