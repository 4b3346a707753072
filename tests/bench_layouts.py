"""Small copies of five benchmark releases laid out as their authors ship them, with synthetic media at
the released paths (tones, flat images, 1 s clips). Field names and quirks are the releases' own:
OmniBench's keys with spaces, answer as text and mp3 audio; Daily-Omni's lettered "Choice" and separate
``{id}_audio.wav``; WorldSense's ``taskN`` keys; MMAU's "./" paths, 2-8 choices and a repeated choice;
MMAR's JSON Lines and a blank choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from echoink.data.video import write_video
from media_helpers import write_image, write_tone

# EchoInk-R1's Figure 1 question, which is OmniBench item 7.
FIG1_QUESTION = "What is this man doing?"
FIG1_OPTIONS = ["Pursuing fugitives.", "Searching for someone on an empty square.", "Shooting with a gun.",
                "Searching for people in the crowd."]  # fmt: skip


def _mp3(path: Path, freq: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000) / 16_000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16_000, format="MP3")


def _clip(path: Path, seed: int, sound: bool) -> None:
    rng = np.random.default_rng(seed)
    frames = np.repeat(rng.integers(0, 255, (1, 56, 56, 3), dtype=np.uint8), 2, axis=0)  # 1 s at 2 fps
    t = np.arange(16_000) / 16_000
    tone = (0.3 * np.sin(2 * np.pi * (300 + 100 * seed) * t)).astype(np.float32)
    write_video(path, frames, 2, tone if sound else None)


def write_omnibench(root: Path) -> Path:
    """Items 6, 7 (Figure 1), 8; item 8's image is absent. Item 6's answer text starts "A man", which
    OmniBench's own parser reads as gold "A" though it is option C."""
    src = root / "OmniBench"
    rows = [
        {"task type": "Action and Activity", "audio type": "speech", "question": "Who is speaking",
         "audio content": "A: ...", "image content": "A room.", "audio_path": "1_26.mp3", "image_path": "1_026.png",
         "index": 6, "answer": "A man is answering some questions",
         "options": ["A woman is explaining to a man", "A redhead lady is asking question",
                     "A man is answering some questions", "A man in blue shirt explaining current situation to woman"]},
        {"task type": "Action and Activity", "audio type": "speech", "question": FIG1_QUESTION,
         "audio content": "A: Jenny!\nB: Forrest!", "image content": "A crowd.", "audio_path": "3_011jenny.mp3",
         "image_path": "3_011jenny.jpg", "index": 7, "answer": "Searching for people in the crowd.",
         "options": FIG1_OPTIONS},
        {"task type": "Story Description", "audio type": "music", "question": "What is happening?",
         "audio content": "music", "image content": "x", "audio_path": "6-013.mp4.mp3.mp3.mp3",
         "image_path": "6-013.png", "index": 8, "answer": "A soldier is forced to do something.",
         "options": ["This man is in pain.", "This man's home is bombed.", "A soldier is forced to do something.",
                     "Doctors are arguing."]},
    ]  # fmt: skip
    (src / "dataset").mkdir(parents=True)
    (src / "dataset/batch-5_1142_20240817.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for i, r in enumerate(rows):
        _mp3(src / "mm_data/audio" / r["audio_path"], 300 + 100 * i)
        if r["index"] != 8:
            write_image(src / "mm_data/image" / r["image_path"], color=(60 * i, 90, 200 - 50 * i))
    return src


def write_daily_omni(root: Path) -> Path:
    """Three questions on two videos (with separate stereo wavs; the mp4s carry no sound), one on a video
    that is absent; one row has the release's "Explaination" key and no content categories."""
    src = root / "Daily-Omni"
    choice = ["A. Still bottle → Price text", "B. Facial demo → Presenter", "C. Torso shot", "D. Bookshelf"]
    base = {"Type": "Event Sequence", "content_parent_category": "Lifestyle", "content_fine_category": "Skincare",
            "video_category": "Howto & Style", "video_duration": "30s"}  # fmt: skip
    rows = [
        {"Question": "What came right after the video?", "Choice": choice, "Answer": "B", "video_id": "Ec_lQgZ9wlg", **base},
        {"Question": "Which sound came first?", "Choice": choice, "Answer": "D", "video_id": "Ec_lQgZ9wlg", **base,
         "Type": "AV Event Alignment"},
        {"Question": "What prompted the remark?", "Choice": choice, "Answer": "A", "video_id": "RqA3LAo75kw",
         "Type": "Reasoning", "video_category": "Entertainment", "video_duration": "60s", "Explaination": "because"},
        {"Question": "Gone?", "Choice": choice, "Answer": "C", "video_id": "absent00000", **base},
    ]  # fmt: skip
    src.mkdir()
    (src / "qa.json").write_text(json.dumps(rows, indent=4, ensure_ascii=False))
    for seed, vid in enumerate(["Ec_lQgZ9wlg", "RqA3LAo75kw"]):
        _clip(src / f"Videos/{vid}/{vid}_video.mp4", seed, sound=False)
        write_tone(src / f"Videos/{vid}/{vid}_audio.wav", freq=500 + 100 * seed, channels=2)
    return src


def write_worldsense(root: Path) -> Path:
    """Two videos, questions under task1, task2 and task10 (sorted by number); sound in the video's track."""
    src = root / "WorldSense"
    cands = ["A. a dog", "B. a car", "C. a bell", "D. a drum"]

    def task(q: str, answer: str, task_type: str) -> dict:
        return {"question": q, "candidates": cands, "answer": answer, "task_domain": "Recognition",
                "task_type": task_type}  # fmt: skip

    qa = {
        "vid001": {"duration": "<1min", "domain": "Daily Life", "sub_category": "Pet", "audio_class": ["Event"],
                   "video_caption": "A dog barks.", "task1": task("What barks?", "A", "Audio Recognition"),
                   "task10": task("What rings?", "C", "Audio Counting"),
                   "task2": task("What honks?", "B", "Audio Recognition")},
        "vid002": {"duration": "1-2min", "domain": "Music", "sub_category": "Drums", "audio_class": ["Music"],
                   "video_caption": "Drums.", "task1": task("What plays?", "D", "Audio Recognition")},
    }  # fmt: skip
    src.mkdir()
    (src / "worldsense_qa.json").write_text(json.dumps(qa, indent=2))
    for seed, vid in enumerate(qa):
        _clip(src / f"videos/{vid}.mp4", seed + 2, sound=True)
    return src


def write_mmau(root: Path) -> Path:
    """Three items with 2, 4 (one repeated) and 8 choices, "./test-mini-audios/{id}.wav" paths."""
    src = root / "MMAU"
    eight = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
    rows = [
        {"id": "u-1", "audio_id": "./test-mini-audios/u-1.wav", "question": "Is the speaker a man?",
         "choices": ["Yes", "No"], "answer": "Yes", "dataset": "AudioSet", "task": "speech", "split": "test-mini",
         "category": "Reasoning", "sub-category": "Speaker", "difficulty": "easy"},
        {"id": "u-2", "audio_id": "./test-mini-audios/u-2.wav", "question": "How many beeps?",
         "choices": ["thirteen", "twenty", "thirteen", "five"], "answer": "twenty", "dataset": "x", "task": "sound",
         "split": "test-mini", "category": "Information Extraction", "sub-category": "Counting",
         "difficulty": "medium"},
        {"id": "u-3", "audio_id": "./test-mini-audios/u-3.wav", "question": "Which count is it?",
         "choices": eight, "answer": "eight", "dataset": "x", "task": "music", "split": "test-mini",
         "category": "Reasoning", "sub-category": "Counting", "difficulty": "hard"},
    ]  # fmt: skip
    src.mkdir()
    (src / "mmau-test-mini.json").write_text(json.dumps(rows, indent=4))
    for i, r in enumerate(rows):
        write_tone(src / r["audio_id"], seconds=0.5, freq=300 + 100 * i)
    return src


def write_mmar(root: Path) -> Path:
    """Three items, JSON Lines, "./audio/{id}.wav" paths, 2-6 choices, one with a trailing "" choice."""
    src = root / "MMAR"
    six = ["Mountain Canyon", "Dense Forest", "Open Grassland", "City Streets", "Desert", "Ocean"]
    rows = [
        {"id": "qx8_00-01-32", "audio_path": "./audio/qx8_00-01-32.wav", "question": "Where is this from?",
         "choices": six, "answer": "Open Grassland", "modality": "music", "category": "Cultural Layer",
         "sub-category": "Professional Knowledge", "language": None, "url": "https://example.org"},
        {"id": "BV1_00-00-00", "audio_path": "./audio/BV1_00-00-00.wav", "question": "Did they enter?",
         "choices": ["Entered", "Did not enter", ""], "answer": "Entered", "modality": "speech",
         "category": "Semantic Layer", "sub-category": "Content", "language": "zh", "url": "https://example.org"},
        {"id": "zt_00-00-16", "audio_path": "./audio/zt_00-00-16.wav", "question": "Which game?",
         "choices": ["Scrabble", "Number guessing game", "Word guessing game"], "answer": "Word guessing game",
         "modality": "mix-sound-speech", "category": "Semantic Layer", "sub-category": "Content",
         "language": "en", "url": "https://example.org"},
    ]  # fmt: skip
    src.mkdir()
    (src / "MMAR-meta.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for i, r in enumerate(rows):
        write_tone(src / r["audio_path"], seconds=0.5, freq=350 + 100 * i)
    return src


WRITERS = {"omnibench": write_omnibench, "daily-omni": write_daily_omni, "worldsense": write_worldsense,
           "mmau": write_mmau, "mmar": write_mmar}  # fmt: skip


def import_all(root: Path) -> Path:
    """Write the five releases under ``root`` and import each there with the CLI; returns ``root``."""
    from typer.testing import CliRunner

    from echoink.cli import app

    for name, write in WRITERS.items():
        result = CliRunner().invoke(app, ["data", "import", name, str(write(root)), "--out", str(root)])
        assert result.exit_code == 0, result.output
    return root
