"""A blind A/B listening test of the two feature networks, for anyone who can listen.

docs/audio.md compares ``random`` and ``vgg19`` on the texture measure and on spectrograms; a listening
comparison needs a person. This script makes one that takes about ten minutes:

1. ``python docs/audio/make_listening_test.py OUT_DIR`` runs the example voice (first ``--seconds`` seconds)
   through each example texture with both networks, everything else at the defaults, and writes into OUT_DIR
   the content and style clips, the results under neutral names (``trial1_A.wav``, ``trial1_B.wav``, ...; which
   network is A is drawn at random for each trial, seeded by ``--seed``), ``key.json`` (the answer key: do not
   open it before listening) and ``index.html``.
2. Open ``index.html`` in a browser (no server needed), listen, answer the two questions of each trial, press
   "Show answers" and save the text it shows as ``answers.json`` in OUT_DIR.
3. ``python docs/audio/make_listening_test.py OUT_DIR --score`` unblinds the answers and prints, for each
   question, how many trials each network won.

VGG19 is the slow part of making the test. Nothing is overwritten without ``--overwrite``.
"""
from __future__ import annotations

import argparse
import html
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent.parent / "examples" / "audio"
TEXTURES = ("organ", "marimba", "strings", "rain")
NETWORKS = ("random", "vgg19")
QUESTIONS = {"texture": "Which one sounds more like the style (its timbre and texture)?",
             "words": "In which one are the words and their rhythm easier to follow?"}
CHOICES = ("A", "B", "same")


def make(out: Path, seconds: float, seed: int, overwrite: bool) -> None:
    import torch

    import stylekit
    from stylekit._io import atomic_write
    from stylekit.audio.io import load_audio, write_audio
    from stylekit.audio.pipeline import build_config

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
        order = list(NETWORKS)
        draw.shuffle(order)
        key[f"trial{i}"] = {"A": order[0], "B": order[1], "texture": texture}
        for label, network in zip("AB", order):
            print(f"trial {i} ({texture}), {label} ...", flush=True)
            r = stylekit.stylize_audio(content, [style], config=build_config(network=network))
            write_audio(out / f"trial{i}_{label}.wav", r.data, r.sample_rate, overwrite=overwrite)
    text = {"key.json": json.dumps({"seed": seed, "seconds": seconds, "trials": key}, indent=1) + "\n",
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
    """Unblind ``answers.json`` with ``key.json``: wins per network, ties and unanswered, per question."""
    try:
        key = json.loads((out / "key.json").read_text())["trials"]
        answers = json.loads((out / "answers.json").read_text())
    except (OSError, ValueError, KeyError) as e:
        _fail(f"cannot read key.json and answers.json in {out}: {e}")
    tally = {q: {**{n: 0 for n in NETWORKS}, "same": 0, "unanswered": 0} for q in QUESTIONS}
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
    ap.add_argument("--seed", type=int, default=0, help="seeds which network is A in each trial")
    ap.add_argument("--score", action="store_true", help="unblind OUT_DIR/answers.json and print the tally")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    if args.score:
        for q, t in score(args.out_dir).items():
            print(f"{QUESTIONS[q]}  " + ", ".join(f"{k}: {v}" for k, v in t.items()))
    else:
        from stylekit.errors import StylekitError

        try:
            make(args.out_dir, args.seconds, args.seed, args.overwrite)
        except StylekitError as e:
            _fail(str(e))


if __name__ == "__main__":
    main()
