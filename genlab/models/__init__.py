"""Model families of the book: GANs (``gan``), VAEs (``vae``) and autoregressive text models (``text``).

See: book/04_practice/genlab_tour.ipynb.
"""

from genlab.models.gan import (
    DCGANCritic,
    DCGANDiscriminator,
    DCGANGenerator,
    DiscriminatorBase,
    GeneratorBase,
    MinibatchDiscrimination,
    MLPDiscriminator,
    MLPGenerator,
    ToyDiscriminator,
    ToyGenerator,
    count_parameters,
    init_dcgan_weights,
    standard_normal,
)
from genlab.models.text import CausalSelfAttention, CharRNN, TinyTransformer, TransformerBlock, generate
from genlab.models.vae import LIKELIHOODS, MLPVAE, ConvVAE, VAEBase, VAEOutput, reparameterise

__all__ = [
    "LIKELIHOODS", "CausalSelfAttention", "CharRNN", "ConvVAE", "DCGANCritic", "DCGANDiscriminator",
    "DCGANGenerator", "DiscriminatorBase", "GeneratorBase", "MLPDiscriminator", "MLPGenerator", "MLPVAE",
    "MinibatchDiscrimination", "TinyTransformer", "ToyDiscriminator", "ToyGenerator", "TransformerBlock",
    "VAEBase", "VAEOutput", "count_parameters", "generate", "init_dcgan_weights", "reparameterise",
    "standard_normal",
]
