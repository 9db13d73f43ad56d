"""genlab: the companion package of the book "Generative AI, Hands-On".

Small, tested modules that the notebooks call: ``data``, ``models``, ``losses``,
``training``, ``checkpoint``, ``metrics``, ``plots``, ``widgets``.
"""

from genlab.runtime import Profile, get_device, get_profile, seed_everything

__version__ = "0.1.0"
__all__ = ["Profile", "__version__", "get_device", "get_profile", "seed_everything"]
