"""Property: for rows drawn from a space of damaged media, `data check` rejects the row or the pipeline runs it.

"Runs" is the evaluation path on the real tiny thinker (processor, towers, get_rope_index, generate),
the same prompt building that training's rollouts use.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from echoink.data import load_split
from echoink.data.check import check_split
from echoink.eval.evaluate import load_model
from echoink.scoring.predict import EvalSettings, predict_batch
from media_helpers import make_row, png_header_only, write_split, write_truncated_jpeg

IMAGES = st.one_of(
    st.tuples(st.just("png"), st.integers(1, 90), st.integers(1, 90)),
    st.tuples(st.just("png16"), st.integers(1, 48), st.integers(1, 48)),
    st.tuples(st.just("wide"), st.integers(100, 400), st.integers(1, 3)),  # aspect ratio, height
    st.tuples(st.just("jpeg_cut"), st.integers(0, 1500)),
    st.tuples(st.just("header"), st.integers(1, 40_000), st.integers(1, 40_000)),
    st.tuples(st.just("junk"), st.binary(max_size=64)),
)
AUDIO = st.tuples(
    st.integers(0, 2_000),  # frames
    st.sampled_from([8_000, 16_000, 44_100]),
    st.integers(1, 2),  # channels
    st.sampled_from([None, np.nan, np.inf, -np.inf]),
)


def _write_image(path: Path, spec: tuple) -> None:
    kind, *args = spec
    rng = np.random.default_rng(len(args))
    if kind == "png":
        Image.fromarray(rng.integers(0, 255, (args[1], args[0], 3), dtype=np.uint8)).save(path, "PNG")
    elif kind == "png16":
        Image.fromarray(rng.integers(0, 65535, (args[1], args[0]), dtype=np.uint16)).save(path, "PNG")
    elif kind == "wide":
        Image.new("RGB", (args[0] * args[1], args[1]), (10, 200, 30)).save(path, "PNG")
    elif kind == "jpeg_cut":
        write_truncated_jpeg(path)
        data = path.read_bytes()
        path.write_bytes(data[: max(0, len(data) - args[0])])
    elif kind == "header":
        png_header_only(path, args[0], args[1])
    else:
        path.write_bytes(args[0])


def _write_audio(path: Path, spec: tuple) -> None:
    frames, rate, channels, poison = spec
    wave = 0.3 * np.sin(np.arange(frames) / 7.0)[:, None].repeat(channels, 1)
    if poison is not None and frames:
        wave[frames // 2, 0] = poison
    sf.write(path, wave.astype(np.float32), rate, subtype="FLOAT")


@pytest.fixture(scope="module")
def thinker(tiny_model_dir):
    return load_model(tiny_model_dir, device="cpu")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image=IMAGES, audio=AUDIO)
@example(
    image=("wide", 201, 1), audio=(2_000, 16_000, 1, None)
)  # found by this test: the processor refused it
@example(image=("png", 56, 56), audio=(320, 16_000, 1, None))  # 0 audio tokens: get_rope_index crashed
@example(image=("png", 56, 56), audio=(2_000, 16_000, 2, np.nan))
def test_check_rejects_or_the_pipeline_runs(thinker, image, audio):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_image(root / "image.png", image)
        _write_audio(root / "audio.wav", audio)
        split = write_split(root, [make_row(0, image="image.png", audio="audio.wav")])
        report = check_split(split)
        if report.good == 0:
            assert len(report.problems) == 1  # rejected, by row, with a reason
            return
        samples = load_split(split).samples  # strict: what train and eval load
        model, processor = thinker
        (row,) = predict_batch(model, processor, samples, "none", EvalSettings(max_new_tokens=2))
        assert row["length"] <= 2
