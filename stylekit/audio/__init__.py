"""Audio style transfer on spectrograms (issue 4).

Modules, in the order data flows through them:

- :mod:`.io`: reading (soundfile; librosa/audioread for MP3), checks, mono, 22,050 Hz, loudness; writing.
- :mod:`.transform`: the frozen :class:`~.transform.SpectrogramConfig`, :func:`~.transform.to_spectrogram`
  and :func:`~.transform.to_audio` side by side, the network input scale, chunking.
- :mod:`.phase`: fast Griffin-Lim with momentum from a given phase.
- :mod:`.networks`: the random 1-D conv bank, the VGG19 adapter, and the audio loss terms.
- :mod:`.pipeline`: the frozen :class:`~.pipeline.AudioStyleConfig` and :func:`~.pipeline.stylize_audio`.
- :mod:`.checkpoint`: checkpoints of interrupted runs (plain data, ``weights_only`` loading).
- :mod:`.cli`: the ``stylekit audio`` command.

Nothing is imported here, so ``import stylekit.audio`` stays light.
"""
