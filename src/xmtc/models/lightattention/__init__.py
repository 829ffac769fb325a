"""LightAttention: the AttentionXML encoder on a compressed shallow-wide tree, with generator / discriminator
dynamic negative label sampling.

``network`` (generator + discriminator), ``model`` (config, training, prediction, save/load).
"""

from xmtc.models.lightattention.model import LightAttention, LightAttentionConfig

__all__ = ["LightAttention", "LightAttentionConfig"]
