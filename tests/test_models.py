"""Tests of genlab.models: shapes and ranges of the contract, conditioning, PacGAN packing,
minibatch discrimination, the reparameterisation trick, causal attention and sampling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genlab.models import (
    MLPVAE,
    CharRNN,
    ConvVAE,
    DCGANCritic,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    TinyTransformer,
    ToyDiscriminator,
    ToyGenerator,
    VAEOutput,
    count_parameters,
    generate,
    init_dcgan_weights,
    reparameterise,
)

B = 4


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def small_generators(num_classes=None):
    return [MLPGenerator(latent_dim=8, hidden=(16, 32), num_classes=num_classes),
            DCGANGenerator(latent_dim=8, channels=(16, 8), num_classes=num_classes)]


def small_discriminators(num_classes=None):
    return [MLPDiscriminator(hidden=(32, 16), num_classes=num_classes),
            DCGANDiscriminator(channels=(8, 16), num_classes=num_classes, batch_norm=True),
            DCGANCritic(channels=(8, 16), num_classes=num_classes)]


# ----------------------------------------------------------------------------- GANs


@pytest.mark.parametrize("make", [lambda: MLPGenerator(), lambda: DCGANGenerator()], ids=["mlp", "dcgan"])
def test_generators_emit_tanh_images_at_default_size(make):
    torch.manual_seed(0)
    gen = make()
    images = gen(10 * torch.randn(B, gen.latent_dim))  # large z pushes tanh towards its limits
    assert images.shape == (B, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1
    assert images.min() < 0 < images.max()  # both signs: not a sigmoid
    assert gen.latent_dim == 100 and gen.num_classes is None


def test_dcgan_generator_goes_7_14_28():
    gen = DCGANGenerator()
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen[name] = tuple(output.shape)
        return hook

    gen.norm0.register_forward_hook(record("start"))
    gen.up1.register_forward_hook(record("up1"))
    assert gen(torch.randn(2, 100)).shape == (2, 1, 28, 28)
    assert seen == {"start": (2, 128, 7, 7), "up1": (2, 64, 14, 14)}


def test_dcgan_generator_parameter_count():
    # Linear(100 -> 128*7*7, no bias) + BN(128) + ConvT(128->64, k4, no bias) + BN(64) + ConvT(64->1, k4)
    expected = 100 * 128 * 49 + 2 * 128 + 128 * 64 * 16 + 2 * 64 + 64 * 16 + 1
    n = count_parameters(DCGANGenerator())
    assert n == expected
    assert 0.6e6 < n < 1.0e6  # "about 0.8M"


def test_count_parameters_trainable_only_and_tied_weights():
    layer = nn.Linear(3, 5)
    assert count_parameters(layer) == 3 * 5 + 5
    layer.bias.requires_grad_(False)
    assert count_parameters(layer) == 15 and count_parameters(layer, trainable_only=False) == 20
    tied = TinyTransformer(11, block_size=4, n_layer=1, n_head=1, n_embd=8, tie_weights=True)
    untied = TinyTransformer(11, block_size=4, n_layer=1, n_head=1, n_embd=8, tie_weights=False)
    assert tied.head.weight is tied.token_embedding.weight
    assert count_parameters(untied) - count_parameters(tied) == 11 * 8


@pytest.mark.parametrize("index", range(3))
def test_discriminators_return_raw_logits_of_shape_b(index):
    disc = small_discriminators()[index]
    nn.init.constant_(disc.head.bias, -5.0)
    logits = disc(torch.rand(B, 1, 28, 28) * 2 - 1)
    assert logits.shape == (B,)
    assert (logits < 0).any()  # a sigmoid output could never be negative


def test_dcgan_discriminator_defaults():
    logits = DCGANDiscriminator()(torch.rand(B, 1, 28, 28))
    assert logits.shape == (B,)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in DCGANCritic().modules())


def test_critic_scores_are_per_example():
    # WGAN-GP needs d score_i / d x_j = 0 for i != j: no BatchNorm mixing the batch.
    critic = DCGANCritic(channels=(4, 8)).train()
    x = torch.randn(3, 1, 28, 28, requires_grad=True)
    critic(x)[0].backward()
    assert x.grad[0].abs().sum() > 0
    assert torch.all(x.grad[1:] == 0)


def test_images_of_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\), got \(4, 784\)"):
        MLPDiscriminator()(torch.rand(4, 784))
    with pytest.raises(ValueError, match=r"expected z of shape \(B, 8\)"):
        small_generators()[0](torch.randn(4, 7))


@pytest.mark.parametrize("index", range(2))
def test_conditional_generator_depends_on_label_only_through_labels(index):
    torch.manual_seed(0)
    gen = small_generators(num_classes=10)[index].eval()
    z = torch.randn(B, 8)
    a = gen(z, torch.tensor([0, 1, 2, 3]))
    b = gen(z, torch.tensor([0, 1, 2, 9]))
    assert torch.equal(a[:3], b[:3])  # eval mode: each example depends on its own label only
    assert not torch.allclose(a[3], b[3])
    with pytest.raises(ValueError, match="conditional"):
        gen(z)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        gen(z, torch.tensor([0, 1, 2, 10]))
    with pytest.raises(ValueError, match="unconditional"):
        small_generators()[index](z, torch.zeros(B, dtype=torch.long))


@pytest.mark.parametrize("index", range(3))
def test_conditional_discriminator_uses_labels(index):
    torch.manual_seed(0)
    disc = small_discriminators(num_classes=10)[index].eval()
    x = torch.rand(B, 1, 28, 28)
    a, b = disc(x, torch.tensor([0, 1, 2, 3])), disc(x, torch.tensor([0, 1, 2, 4]))
    assert torch.equal(a[:3], b[:3]) and not torch.allclose(a[3], b[3])
    with pytest.raises(ValueError, match="conditional"):
        disc(x)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        disc(x, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer"):
        disc(x, torch.zeros(B))


def test_generator_sample_is_reproducible_and_accepts_an_int_label():
    gen = small_generators(num_classes=10)[1].eval()
    a = gen.sample(5, labels=3, generator=seeded(1))
    b = gen.sample(5, labels=torch.full((5,), 3), generator=seeded(1))
    c = gen.sample(5, labels=3, generator=seeded(2))
    assert a.shape == (5, 1, 28, 28) and torch.equal(a, b) and not torch.equal(a, c)
    z = torch.randn(5, 8, generator=seeded(1))  # sample draws z ~ N(0, I) from the generator
    assert torch.equal(a, gen(z, torch.full((5,), 3)))


def test_init_dcgan_weights_statistics():
    torch.manual_seed(0)
    model = init_dcgan_weights(nn.Sequential(nn.Conv2d(64, 64, 4), nn.BatchNorm2d(4096), nn.Linear(300, 300)))
    conv, bn, lin = model
    assert abs(conv.weight.std().item() - 0.02) < 0.002 and abs(lin.weight.std().item() - 0.02) < 0.002
    assert abs(bn.weight.mean().item() - 1.0) < 0.002 and abs(bn.weight.std().item() - 0.02) < 0.002
    assert torch.all(conv.bias == 0) and torch.all(bn.bias == 0)


def test_toy_models_shapes_and_linear_output():
    gen = ToyGenerator()
    points = gen(50 * torch.randn(64, 2))
    assert points.shape == (64, 2) and points.abs().max() > 1  # no tanh on the toy generator
    disc = ToyDiscriminator(hidden=16, depth=2, pack=4)
    assert disc(points).shape == (16,)


def test_pack_divisibility_error():
    with pytest.raises(ValueError, match="not divisible by pack=3"):
        ToyDiscriminator(hidden=8, depth=1, pack=3)(torch.randn(10, 2))


def test_packing_groups_consecutive_samples():
    torch.manual_seed(0)
    disc = ToyDiscriminator(hidden=16, depth=2, pack=2)
    x = torch.randn(6, 2)
    out = disc(x)
    swapped_packs = x.view(3, 2, 2)[[2, 0, 1]].reshape(6, 2)  # move whole pairs
    assert torch.allclose(disc(swapped_packs), out[[2, 0, 1]])
    within = x[[1, 0, 2, 3, 4, 5]]  # swap the two samples inside the first pack
    changed = disc(within)
    assert torch.equal(changed[1:], out[1:]) and not torch.allclose(changed[0], out[0])


def test_minibatch_discrimination_makes_logits_depend_on_the_batch():
    torch.manual_seed(0)
    x = torch.randn(8, 2)
    x_other = x.clone()
    x_other[7] += 1.0
    plain = ToyDiscriminator(hidden=16, depth=2)
    assert torch.equal(plain(x)[:7], plain(x_other)[:7])
    mbd = ToyDiscriminator(hidden=16, depth=2, minibatch_features=4)
    assert mbd(x).shape == (8,)
    assert not torch.allclose(mbd(x)[:7], mbd(x_other)[:7])
    # identical samples: every pairwise L1 distance is 0, each feature = (N - 1) * exp(0)
    same = mbd.minibatch(torch.ones(5, 16))
    assert torch.allclose(same, torch.full((5, 4), 4.0))


# ----------------------------------------------------------------------------- VAEs


@pytest.mark.parametrize("make", [lambda lk: MLPVAE(hidden=32, latent_dim=5, likelihood=lk),
                                  lambda lk: ConvVAE(latent_dim=5, channels=(4, 8), likelihood=lk)],
                         ids=["mlp", "conv"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_vae_contract_shapes_and_ranges(make, likelihood):
    torch.manual_seed(0)
    vae = make(likelihood)
    x = torch.rand(B, 1, 28, 28)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (B, 5)
    out = vae(x.view(B, 784))  # flat input accepted
    assert isinstance(out, VAEOutput) and out.decoded.shape == (B, 1, 28, 28) and out.z.shape == (B, 5)
    assert torch.equal(out.mu, mu)
    rec = vae.reconstruct(x)
    samples = vae.sample(3, generator=seeded())
    assert rec.shape == (B, 1, 28, 28) and samples.shape == (3, 1, 28, 28)
    for images in (rec, samples):
        assert images.min() >= 0 and images.max() <= 1
    if likelihood == "bernoulli":
        assert vae.decoder_logvar is None
        assert torch.allclose(rec, torch.sigmoid(vae.decode(mu)))  # decode gives logits
    else:
        assert isinstance(vae.decoder_logvar, nn.Parameter) and vae.decoder_logvar.shape == ()
        assert any(p is vae.decoder_logvar for p in vae.parameters())
        assert torch.allclose(rec, vae.decode(mu))  # decode gives the mean in [0, 1]
        assert out.decoded.min() >= 0 and out.decoded.max() <= 1


def test_vae_errors():
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        MLPVAE(likelihood="poisson")
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\) or \(B, 784\), got \(2, 3, 28, 28\)"):
        ConvVAE().encode(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"expected z of shape \(B, 20\)"):
        MLPVAE().decode(torch.randn(2, 19))


def test_reparameterise_is_mu_plus_sigma_eps_from_the_generator():
    mu = torch.randn(6, 3, requires_grad=True)
    logvar = torch.randn(6, 3, requires_grad=True)
    z1, z2 = reparameterise(mu, logvar, seeded(5)), reparameterise(mu, logvar, seeded(5))
    assert torch.equal(z1, z2)
    assert not torch.equal(z1, reparameterise(mu, logvar, seeded(6)))
    eps = torch.randn(6, 3, generator=seeded(5))
    assert torch.allclose(z1, mu + torch.exp(0.5 * logvar) * eps)
    z1.sum().backward()  # gradients reach mu and logvar: dz/dmu = 1, dz/dlogvar = 0.5 sigma eps
    assert torch.allclose(mu.grad, torch.ones_like(mu))
    assert torch.allclose(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)


def test_vae_forward_uses_the_generator():
    vae = MLPVAE(hidden=16, latent_dim=4)
    x = torch.rand(B, 784)
    a, b = vae(x, generator=seeded(3)), vae(x, generator=seeded(3))
    assert torch.equal(a.z, b.z) and torch.equal(a.decoded, b.decoded)
    assert not torch.equal(a.z, vae(x, generator=seeded(4)).z)


@pytest.mark.parametrize("cls", [MLPVAE, ConvVAE])
def test_conditional_vae(cls):
    torch.manual_seed(0)
    vae = cls(latent_dim=4, num_classes=10)
    z = torch.randn(2, 4)
    a, b = vae.decode(z, torch.tensor([1, 2])), vae.decode(z, torch.tensor([1, 7]))
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1])
    x = torch.rand(2, 1, 28, 28)
    assert not torch.allclose(vae.encode(x, torch.tensor([1, 2]))[0], vae.encode(x, torch.tensor([1, 7]))[0])
    with pytest.raises(ValueError, match="conditional"):
        vae(x)
    assert vae.sample(3, labels=5).shape == (3, 1, 28, 28)


# ----------------------------------------------------------------------------- text models

V = 13


def tiny_transformer(**kwargs):
    torch.manual_seed(0)
    return TinyTransformer(V, **{"block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16, **kwargs})


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_char_rnn_shapes(cell):
    rnn = CharRNN(V, embed_dim=8, hidden_size=16, num_layers=2, cell=cell)
    assert rnn.block_size is None
    assert rnn(torch.randint(V, (3, 7))).shape == (3, 7, V)


def test_text_model_errors():
    with pytest.raises(ValueError, match="unknown cell 'rnn'"):
        CharRNN(V, cell="rnn")
    model = tiny_transformer()
    assert model(torch.randint(V, (2, 8))).shape == (2, 8, V)
    with pytest.raises(ValueError, match="sequence length 9 exceeds block_size=8"):
        model(torch.randint(V, (2, 9)))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 13\)"):
        model(torch.full((1, 3), V))


@pytest.mark.parametrize("fused", [True, False])
def test_transformer_is_causal(fused):
    model = tiny_transformer(fused_attention=fused)
    idx = torch.randint(V, (2, 8), generator=seeded())
    changed = idx.clone()
    changed[:, 5] = (idx[:, 5] + 1) % V
    a, b = model(idx), model(changed)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)  # the past never sees the future
    assert not torch.allclose(a[:, 5], b[:, 5])


def test_explicit_and_fused_attention_agree():
    fused, explicit = tiny_transformer(fused_attention=True), tiny_transformer(fused_attention=False)
    explicit.load_state_dict(fused.state_dict())
    idx = torch.randint(V, (3, 8), generator=seeded())
    assert torch.allclose(fused(idx), explicit(idx), atol=1e-5)


@pytest.mark.parametrize("make", [lambda: tiny_transformer(),
                                  lambda: CharRNN(V, embed_dim=8, hidden_size=16, cell="lstm")],
                         ids=["transformer", "rnn"])
def test_generate_lengths_prefix_determinism_and_mode(make):
    model = make().train()
    prompt = torch.randint(V, (2, 3), generator=seeded())
    out = generate(model, prompt, max_new_tokens=12, generator=seeded(1))  # 15 > block_size: crops
    assert out.shape == (2, 15) and out.dtype == torch.long
    assert torch.equal(out[:, :3], prompt)
    assert out.min() >= 0 and out.max() < V
    assert torch.equal(out, generate(model, prompt, 12, generator=seeded(1)))
    assert model.training  # restored
    model.eval()
    generate(model, prompt, 2)
    assert not model.training
    assert generate(model, prompt, 0).shape == (2, 3)


def greedy_by_hand(model, ids, steps, block_size):
    for _ in range(steps):
        context = ids if block_size is None else ids[:, -block_size:]
        ids = torch.cat([ids, model(context)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


@pytest.mark.parametrize("make", [lambda: tiny_transformer(),
                                  lambda: CharRNN(V, embed_dim=8, hidden_size=16, cell="gru")],
                         ids=["transformer", "rnn"])
def test_top_k_1_is_greedy_decoding(make):
    # For the RNN this also checks that feeding one token per step with the carried state
    # gives exactly what re-reading the whole text gives.
    model = make().eval()
    prompt = torch.randint(V, (2, 4), generator=seeded())
    with torch.no_grad():
        expected = greedy_by_hand(model, prompt, 10, model.block_size)
    got = generate(model, prompt, 10, temperature=0.7, top_k=1, generator=seeded(9))
    assert torch.equal(got, expected)


def test_generate_argument_errors():
    model = tiny_transformer()
    prompt = torch.zeros(1, 2, dtype=torch.long)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature must be"):
            generate(model, prompt, 3, temperature=bad)
    with pytest.raises(ValueError, match="top_k must be"):
        generate(model, prompt, 3, top_k=0)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        generate(model, torch.zeros(5, dtype=torch.long), 3)


def test_low_temperature_concentrates_on_the_argmax():
    model = tiny_transformer()
    prompt = torch.randint(V, (64, 2), generator=seeded())
    with torch.no_grad():
        best = model(prompt)[:, -1].argmax(-1)
    cold = generate(model, prompt, 1, temperature=1e-4, generator=seeded(0))[:, -1]
    hot = generate(model, prompt, 1, temperature=100.0, generator=seeded(0))[:, -1]
    assert torch.equal(cold, best)
    assert (hot != best).sum() > 32  # nearly uniform over 13 symbols: mostly not the argmax


def test_dcgan_discriminator_has_no_dropout_unless_asked():
    """Dropout is opt-in: benchmarks/RESULTS.md (time to quality) measured it slower to every FID threshold."""
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    plain = DCGANDiscriminator().train()
    assert plain.dropout.p == 0.0
    assert torch.equal(plain(x), plain(x))  # training mode, yet deterministic: nothing is dropped
    noisy = DCGANDiscriminator(dropout=0.3).train()
    assert not torch.equal(noisy(x), noisy(x))
