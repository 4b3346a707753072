"""Each family's geometry: images and video frames are sized once, on the family's own grid (28 px for
Qwen2.5-Omni, 32 px for Qwen3-Omni), and the processor keeps them as they are; a long clip's
soundtrack is cut with its frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

from echoink.data import load_split, sample_messages
from echoink.data.messages import VideoSettings
from echoink.data.video import write_video
from echoink.model.loading import load_engine
from media_helpers import make_row, write_image, write_split, write_tone

# (family, vision patch, processor's minimum image area, audio tokens per second, tokens of a 1920x1440
# photo at 200,704 px: Qwen2.5 13 x 18 as EchoInk's images, Qwen3 12 x 16 (not 11 x 16 = 176 after a
# first resize to the 28-px grid)).
FAMILIES = [("qwen2.5-omni", 14, 3136, 25.0, 234), ("qwen3-omni", 16, 4096, 13.0, 192)]


@pytest.fixture
def engines(tiny_model_dir: Path, tiny_qwen3_dir: Path):
    return {"qwen2.5-omni": load_engine(tiny_model_dir), "qwen3-omni": load_engine(tiny_qwen3_dir)}


@pytest.mark.parametrize("family, patch, min_pixels, audio_rate, tokens", FAMILIES)
def test_an_image_is_resized_once_on_the_family_grid(
    engines, tmp_path, family, patch, min_pixels, audio_rate, tokens
):
    engine = engines[family]
    geometry = engine.geometry
    assert (geometry.patch, geometry.cell, geometry.min_pixels) == (patch, 2 * patch, min_pixels)
    assert geometry.audio_tokens_per_second == audio_rate
    write_image(tmp_path / "images/sample_0.png", size=(1920, 1440))
    write_tone(tmp_path / "audios/sample_0.wav", seconds=1.0)
    samples = load_split(write_split(tmp_path, [make_row(0)])).samples
    messages = sample_messages(samples, "reasoning", None, 200_704, geometry=geometry)
    image = messages[0][-1]["content"][0]["image"]
    expected = hf_smart_resize(1440, 1920, 2 * patch, min_pixels=min_pixels, max_pixels=200_704)
    assert image.size == expected[::-1]  # (width, height), aspect 0.75 kept on the family's grid
    prompts = engine.encode(messages)
    _, h, w = prompts.mm.image_grid_thw[0].tolist()
    assert (w * patch, h * patch) == image.size  # the processor's grid is our resize: no second resize
    assert engine.token_counts(prompts)["image"] == h * w // 4 == tokens


@pytest.mark.parametrize("family", [f[0] for f in FAMILIES])
def test_video_frames_are_resized_once_on_the_family_grid(engines, tmp_path, family):
    engine = engines[family]
    frames = np.full((4, 90, 150, 3), 90, np.uint8)  # off both grids
    write_video(tmp_path / "v.mp4", frames, 2, np.zeros(32_000, np.float32))
    row = {**make_row(0), "data_type": "video", "path": {"video": "v.mp4"}}
    (tmp_path / "split.json").write_text(json.dumps([row]))
    samples = load_split(tmp_path / "split.json").samples
    video = VideoSettings(fps=2, max_frames=4, max_pixels=6_000)
    messages = sample_messages(samples, "reasoning", None, None, video=video, geometry=engine.geometry)
    shown = messages[0][-1]["content"][0]["video"]  # [T, H, W, 3]
    cell = engine.geometry.cell
    assert (
        shown.shape[1] % cell == 0 and shown.shape[2] % cell == 0 and shown.shape[1] * shown.shape[2] <= 6_000
    )
    _, h, w = engine.encode(messages).mm.video_grid_thw[0].tolist()
    assert (h * engine.geometry.patch, w * engine.geometry.patch) == shown.shape[1:3]


def test_a_long_clips_soundtrack_obeys_max_audio_seconds(engines, tmp_path):
    """A 60 s clip at 2 fps with 16 frames: 8 s of frames and 8 s of sound (200 audio tokens at 25 Hz),
    not the whole 60 s soundtrack (1,501 tokens) beside 8 s of frames."""
    t = np.arange(60 * 16_000) / 16_000
    write_video(
        tmp_path / "v.mp4", np.zeros((120, 56, 56, 3), np.uint8), 2, (0.3 * np.sin(880 * t)).astype("float32")
    )
    row = {**make_row(0), "data_type": "video_audio", "path": {"video": "v.mp4"}}
    (tmp_path / "split.json").write_text(json.dumps([row]))
    samples = load_split(tmp_path / "split.json").samples
    engine = engines["qwen2.5-omni"]
    for max_audio, frames, audio_tokens in ((10.0, 16, 200), (5.0, 10, 125)):
        messages = sample_messages(
            samples, "reasoning", max_audio, None, video=VideoSettings(), geometry=engine.geometry
        )
        assert len(messages[0][-1]["content"][0]["video"]) == frames
        assert engine.token_counts(engine.encode(messages))["audio"] == audio_tokens


def test_geometry_is_required_wherever_media_are_sized():
    """A caller that forgets the family's geometry fails at once, instead of sizing Qwen3's images on
    Qwen2.5's 28-px grid (the default every one of these had)."""
    import inspect

    from echoink.data import messages

    for fn in (messages.sample_messages, messages.decodable_messages, messages.messages_or_stand_ins):
        geometry = inspect.signature(fn).parameters["geometry"]
        assert geometry.default is inspect.Parameter.empty and geometry.kind is geometry.KEYWORD_ONLY, fn
    geometry = inspect.signature(messages.video_block).parameters["geometry"]
    assert geometry.default is inspect.Parameter.empty
