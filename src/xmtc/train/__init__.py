"""The one training loop (``train_loop``), its settings (``TrainConfig``) and lr schedules."""

from xmtc.train.config import TrainConfig
from xmtc.train.device import autocast, resolve_device, seed_everything
from xmtc.train.schedule import lr_at
from xmtc.train.trainer import TrainResult, epoch_rng, train_loop

__all__ = ["TrainConfig", "TrainResult", "autocast", "epoch_rng", "lr_at", "resolve_device", "seed_everything",
           "train_loop"]
