"""ECG classification (``meit classify``): an ECG encoder — signal or paper image — with a multi-label head.

PTB-XL's diagnostic superclasses (or findings), Wang et al.'s two-stage schedule (a first stage on rendered
synthetic records, then the target), denoised paper images, and per-class AUROC with bootstrap intervals beside
the shuffled-ECG control. Sits above evaluation (its metrics and controls) and training (the shared loop).
"""

from meit.classify.config import ClassifyRecipe
from meit.classify.model import EcgClassifier

__all__ = ["ClassifyRecipe", "EcgClassifier"]
