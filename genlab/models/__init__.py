"""Model families of the book: Gaussian mixtures (``mixture``), GANs (``gan``), VAEs (``vae``),
autoregressive text models (``text``), and Part 7's networks: the U-Net and MLP denoisers of
diffusion (``unet``, ``mlp_denoiser``), coupling flows (``flow``), the PixelCNN (``pixelcnn``) and
energy functions (``ebm``).

See: book/04_practice/genlab_tour.ipynb.
"""

from genlab.models.ebm import ConvEnergy, MLPEnergy
from genlab.models.flow import AffineCoupling, MultiScaleFlow, RealNVP2D
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
from genlab.models.mixture import GaussianMixture, fit_gaussian_mixture
from genlab.models.mlp_denoiser import MLPDenoiser, sinusoidal_embedding
from genlab.models.pixelcnn import MaskedConv2d, PixelCNN
from genlab.models.text import CausalSelfAttention, CharRNN, TinyTransformer, TransformerBlock, generate
from genlab.models.unet import UNet, timestep_embedding
from genlab.models.vae import LIKELIHOODS, MLPVAE, ConvVAE, VAEBase, VAEOutput, reparameterise

__all__ = [
    "AffineCoupling",
    "ConvEnergy",
    "MaskedConv2d",
    "MLPEnergy",
    "MultiScaleFlow",
    "PixelCNN",
    "RealNVP2D",
    "CausalSelfAttention",
    "CharRNN",
    "ConvVAE",
    "count_parameters",
    "DCGANCritic",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "DiscriminatorBase",
    "fit_gaussian_mixture",
    "GaussianMixture",
    "generate",
    "GeneratorBase",
    "init_dcgan_weights",
    "LIKELIHOODS",
    "MinibatchDiscrimination",
    "MLPDenoiser",
    "MLPDiscriminator",
    "MLPGenerator",
    "MLPVAE",
    "reparameterise",
    "sinusoidal_embedding",
    "standard_normal",
    "TinyTransformer",
    "ToyDiscriminator",
    "ToyGenerator",
    "TransformerBlock",
    "UNet",
    "timestep_embedding",
    "VAEBase",
    "VAEOutput",
]
