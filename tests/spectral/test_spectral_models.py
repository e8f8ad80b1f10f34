"""The five spectral models: shapes, PCA's closed form, VAE's KL, checkpoints (tamper/foreign), training."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from stylekit.errors import ConfigError, WeightsError
from stylekit.spectral.features import SpectralSTFTConfig
from stylekit.spectral.models import MODELS, PCA, VAE, build_model, load_model, save_model
from stylekit.spectral.train import TrainConfig, TrainProgress, fit, train_to_file

F = 33  # a small STFT: n_fft 64
STFT = SpectralSTFTConfig(n_fft=64, hop_length=16)


from _spectral_data import one_thread, segments  # noqa: E402,F401  (autouse fixture)


def _segments(n=24, t=8, seed=0) -> torch.Tensor:
    return segments(n, t, seed, bins=F)


@pytest.mark.parametrize("name", list(MODELS))
def test_shapes_and_forward_is_decode_encode(name):
    torch.manual_seed(0)
    m = build_model(name, n_bins=F, latent=4).eval()
    x = _segments(3, 5)
    z = m.encode(x)
    assert z.shape == (3, 5, 4)
    assert m.decode(z).shape == x.shape
    torch.testing.assert_close(m(x), m.decode(m.encode(x)))
    assert m.encode(x[0]).shape == (5, 4)  # a whole note (time, bins) goes through every model alike
    total, terms = m.loss(x)
    assert total.dim() == 0 and "mse" in terms


def test_pca_is_exact_at_full_rank_and_matches_svd():
    x = _segments().reshape(-1, F).double()
    pca = PCA(F, F).fit(x)
    torch.testing.assert_close(pca(x.float()).double(), x, atol=1e-4, rtol=0)
    comp = pca.components.double()
    torch.testing.assert_close(comp @ comp.T, torch.eye(F, dtype=torch.float64), atol=1e-5, rtol=0)
    # Eckart-Young: the error of a rank-k PCA is the sum of the discarded squared singular values.
    k = 3
    s = torch.linalg.svdvals(x - x.mean(0))
    err = ((PCA(F, k).fit(x)(x.float()).double() - x) ** 2).sum()
    torch.testing.assert_close(err, (s[k:] ** 2).sum(), rtol=1e-3, atol=1e-4)


def test_vae_kl_is_zero_at_the_prior_and_encode_is_the_mean():
    torch.manual_seed(0)
    m = VAE(F, 4, beta=1.0)
    last = m.enc[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    x = _segments(2, 3)
    _, terms = m.loss(x, generator=torch.Generator().manual_seed(0))
    assert float(terms["kl"]) == pytest.approx(0.0, abs=1e-7)
    torch.testing.assert_close(m.encode(x), torch.zeros(2, 3, 4))


def test_latent_size_is_validated():
    with pytest.raises(ConfigError):
        build_model("dae", n_bins=F, latent=0)
    with pytest.raises(ConfigError):
        build_model("nope", n_bins=F, latent=4)


@pytest.mark.parametrize("name", list(MODELS))
def test_checkpoint_round_trip(tmp_path, name):
    torch.manual_seed(1)
    m = build_model(name, n_bins=F, latent=5)
    if name == "pca":
        m.fit(_segments().reshape(-1, F))
    p = save_model(tmp_path / "m.pt", m, STFT, meta={"note": "test"})
    m2, stft, meta = load_model(p)
    assert stft == STFT and meta["note"] == "test" and len(meta["checkpoint_digest"]) == 64
    assert type(m2) is type(m) and m2.config() == m.config()
    x = _segments(2, 4)
    torch.testing.assert_close(m2(x), m.eval()(x))
    with pytest.raises(Exception, match="already exists"):
        save_model(p, m, STFT)


def test_tampered_foreign_and_malicious_checkpoints_are_refused(tmp_path):
    m = build_model("dae", n_bins=F, latent=4)
    p = save_model(tmp_path / "m.pt", m, STFT)
    ck = torch.load(p, weights_only=True)
    ck["state_dict"]["enc.0.bias"][0] += 1.0
    torch.save(ck, tmp_path / "tampered.pt")
    with pytest.raises(WeightsError, match="tampered.pt.*checksum mismatch"):
        load_model(tmp_path / "tampered.pt")
    ck = torch.load(p, weights_only=True)
    ck["config"]["latent"] = 5
    torch.save(ck, tmp_path / "header.pt")
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_model(tmp_path / "header.pt")
    torch.save(m.state_dict(), tmp_path / "foreign.pt")
    with pytest.raises(WeightsError, match="foreign.pt.*foreign checkpoint"):
        load_model(tmp_path / "foreign.pt")
    torch.save({"obj": _Evil()}, tmp_path / "evil.pt")  # needs unpickling of code: weights_only refuses
    with pytest.raises(WeightsError, match="evil.pt.*not a loadable"):
        load_model(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pt"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(WeightsError, match="missing.pt"):
        load_model(tmp_path / "missing.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("name", ["ae", "dae", "lstm", "vae"])
def test_training_lowers_the_loss(name):
    seg = _segments(32, 8)
    cfg = TrainConfig(model=name, latent=4, epochs=15, batch_frames=64, seq_len=8, lr=3e-3)
    torch.manual_seed(0)
    m = build_model(name, n_bins=F, latent=4, **cfg.model_kwargs())
    losses = []
    fit(m, seg, cfg, on_step=lambda p: losses.append(p.loss))
    # the shallow AE starts at the data mean (init_from_data), so it has less left to learn
    assert np.mean(losses[-4:]) < (0.9 if name == "ae" else 0.5) * np.mean(losses[:4])


class _Stop(Exception):
    pass


@pytest.mark.parametrize("name", ["dae", "vae"])
def test_training_is_deterministic_and_resume_gives_the_same_weights(tmp_path, name):
    seg = _segments(16, 8)
    cfg = TrainConfig(model=name, latent=4, epochs=3, batch_frames=32, seq_len=8)
    a = train_to_file("unused", tmp_path / "a.pt", cfg, stft=STFT, segments=seg)
    b = train_to_file("unused", tmp_path / "b.pt", cfg, stft=STFT, segments=seg)

    def interrupt(p: TrainProgress) -> None:
        if p.epoch == 3:
            raise _Stop
    with pytest.raises(_Stop):
        train_to_file("unused", tmp_path / "c.pt", cfg, stft=STFT, segments=seg, on_step=interrupt)
    assert (tmp_path / "c.pt.partial").is_file() and not (tmp_path / "c.pt").exists()
    with pytest.raises(ConfigError, match="--resume"):
        train_to_file("unused", tmp_path / "c.pt", cfg, stft=STFT, segments=seg)
    other = TrainConfig(model=name, latent=4, epochs=4, batch_frames=32, seq_len=8)
    with pytest.raises(ConfigError, match="other options"):
        train_to_file("unused", tmp_path / "c.pt", other, stft=STFT, segments=seg, resume=True)
    c = train_to_file("unused", tmp_path / "c.pt", cfg, stft=STFT, segments=seg, resume=True)
    assert not (tmp_path / "c.pt.partial").exists()
    sa, sb, sc = (load_model(p)[0].state_dict() for p in (a, b, c))
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)
        torch.testing.assert_close(sa[k], sc[k], rtol=0, atol=0)




def test_pca_latent_path_is_perfectly_even():
    # Full-rank PCA decodes a straight latent line to the straight line between the two notes: equal steps.
    from stylekit.spectral.evaluate import latent_roughness
    seg = _segments()
    pca = PCA(F, F).fit(seg.reshape(-1, F))
    seg = seg[:3]
    r = latent_roughness(pca, [s.numpy() for s in seg], STFT, steps=8)
    assert r == pytest.approx(1.0, abs=1e-3)


def test_comparison_table_checks_the_papers_orderings():
    from stylekit.spectral.evaluate import EvalResult, check_orderings, comparison_table
    rmse = {"pca": 3.0, "ae": 3.5, "dae": 2.0, "lstm": 2.5, "vae": 2.8}
    res = [EvalResult(model=m, latent=L, rmse_db=e + (0.4 if (m, L) == ("vae", 8) else 0) - 0.1 * L,
                      n_notes=1, moslqo=4 - e / 10, roughness=1.5 if m == "dae" else 1.2)
           for m, e in rmse.items() for L in (4, 8)]
    checks = dict(check_orderings(res))
    assert checks["PCA beats the shallow AE"].startswith("holds on RMSE at L = [4, 8]")
    assert checks["VAE beats PCA"].startswith("partly holds on RMSE at L = [4] of [4, 8]")
    assert checks["VAE has a smoother latent space than the DAE (lower roughness)"].startswith("holds")
    assert "Spearman" in checks["Perceptual scores follow the reconstruction error"]
    table = comparison_table(res)
    assert "| PCA | 2.60 / 3.70 | 2.20 / 3.70 |" in table


def test_shallow_ae_output_is_non_linear_and_old_checkpoints_keep_their_linear_decoder(tmp_path):
    from stylekit.spectral.models import ShallowAE
    torch.manual_seed(0)
    m = ShallowAE(F, 4)
    with torch.no_grad():
        m.dec.bias.fill_(10.0)
    y = m(_segments(2, 3)).detach()
    assert m.output == "sigmoid" and float(y.max()) <= 1.0 and float(y.min()) >= 0.0
    p = save_model(tmp_path / "ae.pt", m, STFT)
    ck = torch.load(p, weights_only=True)
    del ck["config"]["output"]                       # a checkpoint made before the option existed
    from stylekit.spectral.models import _digest
    header = {k: ck[k] for k in ("format", "model", "config", "stft", "meta")}
    ck["digest"] = _digest(header, ck["state_dict"])
    torch.save(ck, tmp_path / "old.pt")
    old = load_model(tmp_path / "old.pt")[0]
    assert old.output == "linear" and float(old(_segments(2, 3)).detach().max()) > 5.0


def test_lstm_ae_has_the_deep_aes_widths_and_the_old_layout_still_loads(tmp_path):
    from stylekit.spectral.models import LSTMAE, DeepAE
    m, d = LSTMAE(F, 4), DeepAE(F, 4)
    assert m.hidden == d.hidden == (256, 128)
    assert m.enc_hidden[0].out_features == 256 and m.enc_rnn.hidden_size == 128
    assert m.dec_rnn.hidden_size == 128 and m.dec_out.in_features == 256
    old = LSTMAE(F, 4, hidden=8)
    assert old.config()["hidden"] == 8 and len(old.enc_hidden) == 0
    p = save_model(tmp_path / "old.pt", old, STFT)
    assert load_model(p)[0].config() == old.config()


def test_early_stopping_keeps_the_best_epoch_on_the_valid_split():
    from stylekit.spectral.train import valid_loss
    seg, valid = _segments(32, 8, seed=0), _segments(8, 8, seed=1)
    cfg = TrainConfig(model="dae", latent=2, epochs=60, batch_frames=64, seq_len=8, lr=3e-2, patience=2)
    torch.manual_seed(0)
    m = build_model("dae", n_bins=F, latent=2)
    states = []
    fit(m, seg, cfg, valid=valid, on_epoch=lambda e, st: states.append((e, st["early"], st["stopped"])))
    last_epoch, early, stopped = states[-1]
    assert valid_loss(m, valid) == pytest.approx(early["best"], rel=1e-6)   # the best epoch's weights
    assert early["best"] == pytest.approx(min(s[1]["best"] for s in states))
    assert stopped and last_epoch == early["best_epoch"] + cfg.patience < cfg.epochs
    off = []
    fit(build_model("dae", n_bins=F, latent=2), seg, TrainConfig(model="dae", latent=2, epochs=3, batch_frames=64,
        seq_len=8, patience=0), valid=valid, on_epoch=lambda e, st: off.append(e))
    assert off == [1, 2, 3]


def test_seeds_give_mean_and_sd_and_a_win_needs_two_sd():
    from stylekit.spectral.evaluate import EvalResult, better, check_orderings, comparison_table
    assert better((1.0, 0.1, 3), (1.15, 0.1, 3)) == "tie"       # 0.15 <= 2 x 0.1
    assert better((1.0, 0.1, 3), (1.25, 0.1, 3)) == "win"
    assert better((1.25, 0.1, 3), (1.0, 0.05, 3)) == "loss"
    assert better((1.0, 0.0, 1), (1.001, 0.0, 1)) == "win"      # one seed: no sd, the means decide
    res = [EvalResult(model=m, latent=4, rmse_db=e + d, n_notes=1, psm=0.9 - e / 10 + d, seed=s)
           for m, e in (("pca", 3.0), ("dae", 2.0), ("vae", 2.02)) for s, d in enumerate((-0.1, 0.0, 0.1))]
    table = comparison_table(res)
    assert "| PCA | 3.00 ± 0.10 / 0.600 ± 0.100 |" in table and "mean ± sd over 3 seeds" in table
    checks = dict(check_orderings(res))
    assert checks["DAE beats PCA"].startswith("holds on RMSE at L = [4] of [4]")
    assert checks["DAE beats VAE"].startswith("fails on RMSE at L = none of [4] (tie at L = [4])")


def test_shallow_ae_starts_at_the_data_mean():
    from stylekit.spectral.models import ShallowAE
    seg = _segments(8, 4)
    m = ShallowAE(F, 3)
    m.init_from_data(seg)
    with torch.no_grad():
        m.dec.weight.zero_()
        out = m.decode(torch.zeros(1, 3))[0]
    torch.testing.assert_close(out, seg.reshape(-1, F).mean(0).clamp(1e-3, 1 - 1e-3), atol=1e-5, rtol=0)
