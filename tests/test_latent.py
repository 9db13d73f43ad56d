import pytest
import torch
from torch import nn

from genlab.latent import LatentScaler, encode_dataset, sample_latent_flow
from genlab.models import ConvVAE

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: one thread, restored afterwards


def test_encode_dataset_uses_posterior_means_in_batches():
    torch.manual_seed(0)
    vae = ConvVAE(latent_dim=4, channels=(4, 8)).train()
    images = torch.rand(23, 1, 28, 28)
    codes = encode_dataset(vae, images, batch_size=5)  # uneven last batch
    with torch.no_grad():
        mu, _ = vae.encode(images)
    assert codes.shape == (23, 4)
    torch.testing.assert_close(codes, mu)
    assert vae.training  # mode restored


def test_encode_dataset_accepts_a_deterministic_encoder_and_checks_inputs():
    class AE(nn.Module):
        def encode(self, x):
            return x.flatten(1)[:, :3] * 2

    images = torch.rand(7, 1, 28, 28)
    torch.testing.assert_close(encode_dataset(AE(), images, batch_size=3), images.flatten(1)[:, :3] * 2)
    with pytest.raises(ValueError, match="to_unit_range"):
        encode_dataset(AE(), images * 2 - 1)
    with pytest.raises(TypeError, match="encode"):
        encode_dataset(nn.Linear(2, 2), images)


def test_scaler_standardises_and_round_trips():
    z = torch.randn(500, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([0.5, 2.0, 7.0]) + 3
    scaler = LatentScaler.fit(z)
    scaled = scaler.transform(z)
    torch.testing.assert_close(scaled.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(scaled.std(0), torch.ones(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(scaler.inverse(scaled), z, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        scaler.transform(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="N >= 2"):
        LatentScaler.fit(torch.zeros(1, 3))


def exact_velocity(z, s):
    """Straight paths from N(0, I) to N(0, I): E[x1 - x0 | x_s = z] = (2s - 1) z / ((1 - s)^2 + s^2)."""
    s = s[:, None]
    return (2 * s - 1) * z / ((1 - s) ** 2 + s ** 2)


@pytest.mark.parametrize("sampler, steps", [("euler", 200), ("heun", 20)])
def test_sample_latent_flow_with_the_exact_velocity_recovers_the_latent_distribution(sampler, steps):
    mean, std = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.3, 1.5, 4.0])
    scaler = LatentScaler(mean, std)
    images, latents = sample_latent_flow(exact_velocity, lambda z: z * 10, scaler, 20_000, steps=steps,
                                         sampler=sampler, generator=torch.Generator().manual_seed(1))
    assert latents.shape == (20_000, 3)
    torch.testing.assert_close(images, latents * 10)  # decode applied to the un-scaled latents
    torch.testing.assert_close(latents.mean(0), mean, atol=0.06, rtol=0)
    torch.testing.assert_close(latents.std(0) / std, torch.ones(3), atol=0.03, rtol=0)


def test_sample_latent_flow_is_seeded_and_checks_arguments():
    scaler = LatentScaler(torch.zeros(2), torch.ones(2))
    a = sample_latent_flow(exact_velocity, lambda z: z, scaler, 5, steps=3, generator=torch.Generator().manual_seed(3))
    b = sample_latent_flow(exact_velocity, lambda z: z, scaler, 5, steps=3, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a[1], b[1])
    with pytest.raises(ValueError, match="unknown sampler"):
        sample_latent_flow(exact_velocity, lambda z: z, scaler, 5, sampler="rk4")
    with pytest.raises(ValueError, match="positive int"):
        sample_latent_flow(exact_velocity, lambda z: z, scaler, 0)
