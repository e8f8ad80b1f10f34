"""Audio style transfer on spectrograms: the home of the audio medium.

Modules, in the order data flows through them:

- :mod:`.config`: the frozen :class:`~.config.AudioStyleConfig` and :class:`~.config.SpectrogramConfig`
  (plain Python: the command line's options and help come from their fields).
- :mod:`.io`: reading (soundfile; librosa/audioread for MP3), checks, channels and rates, loudness; the one
  WAV writer of stylekit, with the settings embedded.
- :mod:`.transform`: :func:`~.transform.to_spectrogram` and :func:`~.transform.to_audio` side by side, the
  network input scale, chunking.
- :mod:`.phase`: fast Griffin-Lim with momentum from a given phase.
- :mod:`.networks`: the random 1-D conv bank and the VGG19 adapter (the loss terms are in
  :mod:`stylekit.losses.audio`).
- :mod:`.pipeline`: :func:`~.pipeline.stylize_audio` and the reusable :func:`~.pipeline.style_targets`.
- :mod:`.stereo`: the content's channels and stereo image put back on the (mono) result.
- :mod:`.job`: :class:`~.job.AudioJob`, the run protocol (outputs, checkpoints, resume) for one sound.
- :mod:`.cli`: the ``stylekit audio`` command.

Nothing is imported here, so ``import stylekit.audio`` stays light.
"""
