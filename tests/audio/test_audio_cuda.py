"""Sound on CUDA against the CPU: the spectrogram transform, Griffin-Lim and a whole short run (marker `cuda`).

Tolerances (IEEE fp32; cuFFT and pocketfft round differently):
- log spectrograms: absolute 1e-3 (natural log, so about 1e-3 relative in magnitude) where the magnitude is
  above 1e-3 of full scale, 5e-2 near the log floor, where a tiny absolute difference is a large log one;
- STFT -> iSTFT with the true phase: the signals agree within 1e-4 of the signal's RMS;
- Griffin-Lim (32 fast iterations from the same seeded random phase): the two results' spectral convergence
  differs by less than 0.02 (the momentum makes the iterates drift apart in detail, not in quality);
- a 5-step run on CUDA against the CPU: first loss 1e-3 relative, and outputs of the same loudness (RMS within
  5%) and correlated (> 0.9).
"""
import numpy as np
import pytest
import torch

from stylekit.audio.networks import RandomConvBank
from stylekit.audio.phase import griffin_lim, istft, stft
from stylekit.audio.pipeline import stylize_audio
from stylekit.audio.transform import (SpectrogramConfig, content_phase, spectral_convergence, to_audio, to_network,
                                      to_spectrogram)

from _audio_data import SR, textureish, voiceish

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("cuda_ieee")]


@pytest.mark.parametrize("kind", ["mel", "linear"])
def test_spectrogram_matches_the_cpu(kind):
    cfg = SpectrogramConfig(kind=kind, n_fft=1024, hop_length=256, n_mels=96)
    y = voiceish(1.0)
    cpu = to_spectrogram(y, cfg)
    gpu = to_spectrogram(torch.from_numpy(y).cuda(), cfg)
    assert gpu.device.type == "cuda" and tuple(gpu.shape) == cpu.shape
    gpu = gpu.cpu().numpy()
    loud = cpu > np.log(1e-3)
    assert np.abs(gpu - cpu)[loud].max() < 1e-3
    assert np.abs(gpu - cpu).max() < 5e-2
    phase_gpu, phase_cpu = content_phase(torch.from_numpy(y).cuda(), cfg).cpu().numpy(), content_phase(y, cfg)
    mag = np.abs(stft(torch.from_numpy(y), n_fft=1024, hop_length=256).numpy())
    strong = mag > 1e-2 * mag.max()          # the phase of a near-zero bin is rounding noise
    assert np.abs(np.exp(1j * phase_gpu) - np.exp(1j * phase_cpu))[strong].max() < 1e-3


def test_stft_round_trip_on_cuda():
    y = torch.from_numpy(voiceish(0.8)).cuda()
    spec = stft(y, n_fft=512, hop_length=128)
    back = istft(spec, n_fft=512, hop_length=128, length=y.shape[0])
    assert back.device.type == "cuda"
    assert float((back - y).pow(2).mean().sqrt() / y.pow(2).mean().sqrt()) < 1e-4
    spec_cpu = stft(y.cpu(), n_fft=512, hop_length=128)
    assert float((spec.cpu() - spec_cpu).abs().max() / spec_cpu.abs().max()) < 1e-5


def test_griffin_lim_on_cuda_matches_the_cpu():
    y = voiceish(1.0)
    mag = stft(torch.from_numpy(y), n_fft=1024, hop_length=256).abs()
    cpu = griffin_lim(mag, n_fft=1024, hop_length=256, length=len(y), n_iter=32, seed=3)
    gpu = griffin_lim(mag.cuda(), n_fft=1024, hop_length=256, length=len(y), n_iter=32, seed=3)
    assert isinstance(gpu, np.ndarray) and gpu.shape == cpu.shape == y.shape
    cfg = SpectrogramConfig(kind="linear", n_fft=1024, hop_length=256)
    sc_cpu, sc_gpu = spectral_convergence(y, cpu, cfg), spectral_convergence(y, gpu, cfg)
    assert abs(sc_gpu - sc_cpu) < 0.02, (sc_cpu, sc_gpu)
    # no iterations: the same signal from the same start phase
    zero_cpu = griffin_lim(mag, n_fft=1024, hop_length=256, length=len(y), n_iter=0, seed=3)
    zero_gpu = griffin_lim(mag.cuda(), n_fft=1024, hop_length=256, length=len(y), n_iter=0, seed=3)
    assert np.sqrt(np.mean((zero_gpu - zero_cpu) ** 2)) < 1e-4 * np.sqrt(np.mean(zero_cpu ** 2)) + 1e-7


@pytest.mark.parametrize("kind", ["mel", "linear"])
def test_to_audio_on_cuda_matches_the_cpu(kind):
    cfg = SpectrogramConfig(kind=kind, n_fft=1024, hop_length=256, n_mels=96, griffin_lim_iters=16)
    y = voiceish(1.0)
    spec = to_spectrogram(y, cfg)
    phase = content_phase(y, cfg)
    cpu = to_audio(spec, cfg, length=len(y), init_phase=phase)
    gpu = to_audio(torch.from_numpy(spec).cuda(), cfg, length=len(y), init_phase=torch.from_numpy(phase).cuda())
    assert gpu.shape == cpu.shape == y.shape
    lin = SpectrogramConfig(kind="linear", n_fft=1024, hop_length=256)
    assert abs(spectral_convergence(y, gpu, lin) - spectral_convergence(y, cpu, lin)) < 0.02


def test_feature_network_matches_the_cpu():
    cfg = SpectrogramConfig(n_fft=1024, hop_length=256, n_mels=96)
    z = to_network(torch.from_numpy(to_spectrogram(voiceish(1.0), cfg)), cfg)[None, None]
    bank = RandomConvBank(96, widths=(3, 7), channels=32, seed=0)
    cpu = bank(z)
    gpu = bank.to("cuda")(z.cuda())
    for k in cpu:
        assert float((gpu[k].cpu() - cpu[k]).norm() / cpu[k].norm()) < 1e-4, k


@pytest.mark.parametrize("network", ["random", "vgg19"])
def test_short_run_on_cuda_matches_the_cpu(network):
    content, style = (voiceish(1.0), SR), (textureish(0.8), SR)
    runs = {}
    for device in ("cpu", "cuda"):
        losses = []
        r = stylize_audio(content, style, network=network, steps=5, griffin_lim_iters=8, device=device, threads=1,
                          callback=lambda p: losses.append(p.loss))
        assert np.isfinite(r.samples).all() and r.samples.shape == (SR,)
        runs[device] = (r.samples, losses)
    (a, la), (b, lb) = runs["cpu"], runs["cuda"]
    assert lb[0] == pytest.approx(la[0], rel=1e-3)
    assert np.sqrt(np.mean(b ** 2)) == pytest.approx(np.sqrt(np.mean(a ** 2)), rel=5e-2)
    assert np.corrcoef(a, b)[0, 1] > 0.9
