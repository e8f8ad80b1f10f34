"""A blind A/B listening test of stylekit's audio choices, for anyone who can listen.

docs/audio.md compares its choices on objective measures and on spectrograms; a listening comparison needs a
person. This script makes one that takes about ten minutes, for one of three comparisons (``--compare``):

- ``networks``: the ``random`` bank (the default) against ``vgg19``;
- ``inverse``: the style's fine structure on inversion (``--mel-inverse prior``, the default) against each
  band spread evenly (``pinv``);
- ``vocoder``: stylekit at its defaults against the channel vocoder at its own (``--tools DIR``: the folder of
  the independent ``vocoder.py``, run as a program).

1. ``python docs/audio/make_listening_test.py OUT_DIR [--compare ...]`` runs the example voice (first
   ``--seconds`` seconds) through each example texture both ways, everything else at the defaults, and writes
   into OUT_DIR the content and style clips, the results under neutral names (``trial1_A.wav``,
   ``trial1_B.wav``, ...; which one is A is drawn at random for each trial, seeded by ``--seed``), ``key.json``
   (the answer key: do not open it before listening) and ``index.html``.
2. Open ``index.html`` in a browser (no server needed), listen, answer the two questions of each trial, press
   "Show answers" and save the text it shows as ``answers.json`` in OUT_DIR.
3. ``python docs/audio/make_listening_test.py OUT_DIR --score`` unblinds the answers and prints, for each
   question, how many trials each side won.

VGG19 is the slow part of the ``networks`` test. Nothing is overwritten without ``--overwrite``.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent.parent / "examples" / "audio"
TEXTURES = ("organ", "marimba", "strings", "rain")
#: comparison -> the two sides (the first is stylekit's default)
COMPARISONS = {"networks": ("random", "vgg19"), "inverse": ("prior", "pinv"), "vocoder": ("stylekit", "vocoder")}
QUESTIONS = {"texture": "Which one sounds more like the style (its timbre and texture)?",
             "words": "In which one are the words and their rhythm easier to follow?"}
CHOICES = ("A", "B", "same")


def _side(compare: str, side: str, content: tuple, style: Path, tools: Path | None):
    """One result of one side of the comparison, as (samples, rate)."""
    import stylekit
    from stylekit.audio.io import load_audio, write_audio
    from stylekit.audio.pipeline import build_config

    if side == "vocoder":
        with tempfile.TemporaryDirectory() as tmp:
            c, o = Path(tmp) / "content.wav", Path(tmp) / "vocoder.wav"
            write_audio(c, *content)
            subprocess.run([sys.executable, str(tools / "vocoder.py"), str(c), str(style), str(o)], check=True,
                           env={**os.environ})
            v = load_audio(o)
            return v.samples / v.gain, v.sample_rate
    options = {"networks": {"network": side}, "inverse": {"mel_inverse": side}}.get(compare, {})
    r = stylekit.stylize_audio(content, [style], config=build_config(**options))
    return r.data, r.sample_rate


def make(out: Path, seconds: float, seed: int, overwrite: bool, compare: str = "networks",
         tools: Path | None = None) -> None:
    import torch

    from stylekit._io import atomic_write
    from stylekit.audio.io import load_audio, write_audio

    if compare == "vocoder" and (tools is None or not (tools / "vocoder.py").is_file()):
        _fail("--compare vocoder needs --tools DIR, the folder that holds vocoder.py")
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    voice = load_audio(EXAMPLES / "voice.wav")
    n = int(round(seconds * voice.sample_rate))
    content = (voice.samples[:n] / voice.gain, voice.sample_rate)       # the excerpt at the file's own level
    write_audio(out / "content.wav", *content, overwrite=overwrite)
    draw = random.Random(seed)
    key = {}
    for i, texture in enumerate(TEXTURES, 1):
        style = EXAMPLES / f"texture_{texture}.wav"
        s = load_audio(style)
        write_audio(out / f"style{i}.wav", s.samples[:n] / s.gain, s.sample_rate, overwrite=overwrite)
        order = list(COMPARISONS[compare])
        draw.shuffle(order)
        key[f"trial{i}"] = {"A": order[0], "B": order[1], "texture": texture}
        for label, side in zip("AB", order):
            print(f"trial {i} ({texture}), {label} ...", flush=True)
            write_audio(out / f"trial{i}_{label}.wav", *_side(compare, side, content, style, tools),
                        overwrite=overwrite)
    text = {"key.json": json.dumps({"compare": compare, "seed": seed, "seconds": seconds, "trials": key},
                                   indent=1) + "\n",
            "index.html": _page(len(TEXTURES))}
    for name, body in text.items():
        atomic_write(out / name, lambda tmp, body=body: tmp.write_text(body), overwrite=overwrite)
    print(f"open {out / 'index.html'} in a browser; save its answers as {out / 'answers.json'}")


def _page(n_trials: int) -> str:
    rows = []
    for i in range(1, n_trials + 1):
        qs = "".join(
            f"<p>{html.escape(text)}<br>" + " ".join(
                f'<label><input type="radio" name="trial{i}_{q}" value="{c}"> {c}</label>' for c in CHOICES)
            + "</p>" for q, text in QUESTIONS.items())
        rows.append(f"""<section><h2>Trial {i}</h2>
<p>content <audio controls src="content.wav"></audio> style <audio controls src="style{i}.wav"></audio></p>
<p>A <audio controls src="trial{i}_A.wav"></audio> B <audio controls src="trial{i}_B.wav"></audio></p>{qs}
</section>""")
    return f"""<!doctype html><meta charset="utf-8"><title>stylekit listening test</title>
<h1>stylekit: blind listening test</h1>
<p>Each trial puts the texture of a style onto the same voice in two ways, A and B. Listen to the content, the
style and both results (headphones help), then answer both questions.</p>
{''.join(rows)}
<button onclick="show()">Show answers</button>
<p>Save this text as answers.json next to this page:</p><textarea id="out" rows="12" cols="80"></textarea>
<script>
function show() {{
  const a = {{}};
  document.querySelectorAll('input[type=radio]:checked').forEach(e => a[e.name] = e.value);
  document.getElementById('out').value = JSON.stringify(a, null, 1);
}}
</script>
"""


def score(out: Path) -> dict:
    """Unblind ``answers.json`` with ``key.json``: wins per side, ties and unanswered, per question."""
    try:
        saved = json.loads((out / "key.json").read_text())
        key, sides = saved["trials"], COMPARISONS[saved.get("compare", "networks")]
        answers = json.loads((out / "answers.json").read_text())
    except (OSError, ValueError, KeyError) as e:
        _fail(f"cannot read key.json and answers.json in {out}: {e}")
    tally = {q: {**{n: 0 for n in sides}, "same": 0, "unanswered": 0} for q in QUESTIONS}
    for trial, k in key.items():
        for q in QUESTIONS:
            a = answers.get(f"{trial}_{q}")
            tally[q][k[a] if a in ("A", "B") else "same" if a == "same" else "unanswered"] += 1
    return tally


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the voice excerpt")
    ap.add_argument("--seed", type=int, default=0, help="seeds which side is A in each trial")
    ap.add_argument("--compare", choices=sorted(COMPARISONS), default="networks",
                    help="networks: random against vgg19; inverse: --mel-inverse prior against pinv; vocoder: "
                         "stylekit against the channel vocoder (needs --tools)")
    ap.add_argument("--tools", type=Path, help="the folder of the independent vocoder.py (--compare vocoder)")
    ap.add_argument("--score", action="store_true", help="unblind OUT_DIR/answers.json and print the tally")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    if args.score:
        for q, t in score(args.out_dir).items():
            print(f"{QUESTIONS[q]}  " + ", ".join(f"{k}: {v}" for k, v in t.items()))
    else:
        from stylekit.errors import StylekitError

        try:
            make(args.out_dir, args.seconds, args.seed, args.overwrite, args.compare, args.tools)
        except StylekitError as e:
            _fail(str(e))


if __name__ == "__main__":
    main()
