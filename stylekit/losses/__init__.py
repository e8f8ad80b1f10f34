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
"""
from .audio import BandStatsLoss, EnvelopeLoss, RhythmLoss, autocorrelation, band_statistics, log_energy
from .functional import content_loss, gram_loss, gram_matrix, mean_std, mean_std_loss, style_loss, tv_loss
from .modules import ContentLoss, GramStyleLoss, MeanStdStyleLoss, StyleTransferLoss, TVLoss

__all__ = [
    "gram_matrix", "content_loss", "gram_loss", "style_loss", "tv_loss", "mean_std", "mean_std_loss",
    "ContentLoss", "GramStyleLoss", "MeanStdStyleLoss", "TVLoss", "StyleTransferLoss",
    "BandStatsLoss", "EnvelopeLoss", "RhythmLoss", "band_statistics", "autocorrelation", "log_energy",
]
