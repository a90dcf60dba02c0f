"""Importers of weights trained elsewhere: the published PyTorch SRM/IPR checkpoints."""

from ipr_jax.importers.srm import load_srm_checkpoint, read_state_dict, unet_config_from_hydra
from ipr_jax.importers.srm_unet import CheckpointMismatchError
from ipr_jax.importers.torch_zip import CheckpointFormatError

__all__ = [
  "CheckpointFormatError",
  "CheckpointMismatchError",
  "load_srm_checkpoint",
  "read_state_dict",
  "unet_config_from_hydra",
]
