"""Style-transfer losses: on feature dicts, pure functions (:mod:`.functional`) and modules (:mod:`.modules`);
on spectrograms, the audio terms (:mod:`.audio`: band statistics, loudness contour, rhythm). Only torch is
imported, never librosa or soundfile.

Example
-------
>>> from stylekit.features import VGG19Features
>>> from stylekit.losses import StyleTransferLoss
>>> net = VGG19Features(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"])
>>> loss = StyleTransferLoss(net)            # relu4_2 content, relu1_1..relu5_1 style
>>> loss.set_style(style_image)              # (1, 3, H, W) in [0, 1]
>>> total, terms = loss(output_batch, content=input_batch)   # as a training loss
>>> loss = StyleTransferLoss(net, style_loss="sw")            # sliced Wasserstein (Heitz et al. 2021)
"""
from .audio import BandStatsLoss, EnvelopeLoss, RhythmLoss, autocorrelation, band_statistics, log_energy
from .functional import (channel_quantiles, content_loss, gaussian_w2, gram_loss, gram_matrix, guided_gram,
                         histogram_loss, mean_std, mean_std_loss, normalize_masks, sliced_wasserstein_loss, sqrtm,
                         style_loss, tv_loss, w2_loss, weighted_moments)
from .modules import (STYLE_LOSSES, ContentLoss, GramStyleLoss, GuidedGramStyleLoss, HistogramStyleLoss,
                      MeanStdStyleLoss, SlicedWassersteinStyleLoss, StyleTransferLoss, TVLoss, W2StyleLoss)

__all__ = [
    "gram_matrix", "content_loss", "gram_loss", "style_loss", "tv_loss", "mean_std", "mean_std_loss",
    "guided_gram", "weighted_moments", "normalize_masks", "sqrtm", "gaussian_w2", "w2_loss",
    "sliced_wasserstein_loss", "channel_quantiles", "histogram_loss",
    "ContentLoss", "GramStyleLoss", "GuidedGramStyleLoss", "MeanStdStyleLoss", "W2StyleLoss",
    "SlicedWassersteinStyleLoss", "HistogramStyleLoss", "TVLoss", "StyleTransferLoss", "STYLE_LOSSES",
    "BandStatsLoss", "EnvelopeLoss", "RhythmLoss", "band_statistics", "autocorrelation", "log_energy",
]
