"""Contrastive ECG–report pretraining of ECG encoders (``meit pretrain``)."""

from meit.pretrain.config import PretrainRecipe
from meit.pretrain.engine import PretrainResult, pretrain
from meit.pretrain.model import EcgTextModel

__all__ = ["EcgTextModel", "PretrainRecipe", "PretrainResult", "pretrain"]
