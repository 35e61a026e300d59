"""The training engine: accelerate (DDP / DeepSpeed / FSDP through its plugins), checkpoints, logs."""

from meit.training.engine import TrainResult, train

__all__ = ["TrainResult", "train"]
