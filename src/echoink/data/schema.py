"""The typed row every stage shares: one multiple-choice question over an audio clip and/or an image."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

DATA_TYPES = ("image_audio", "audio", "image", "text", "video_audio", "video")
""""text": no media (text-only GRPO); "video_audio": a video whose own soundtrack (or a separate
``path.audio`` file, as Daily-Omni ships) is the audio; "video": frames only."""
OPTION_RE = re.compile(r"^\s*([A-Z])\s*[.)]\s*(.*)$", re.S)


class RowError(UserError):
    """A dataset row is invalid. The message names the file, the row index and the reason."""

    def __init__(self, file: str | Path, row: int, reason: str) -> None:
        self.file, self.row, self.reason = str(file), row, reason
        super().__init__(f"{file}: row {row}: {reason}" if row >= 0 else f"{file}: {reason}")


@dataclass(frozen=True)
class Sample:
    """One validated item. ``options`` keep their letters ("A. a dog"); ``answer`` is "C" or "A,C"."""

    id: str
    question: str
    options: tuple[str, ...]
    answer: str
    image: Path | None
    audio: Path | None
    data_type: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    video: Path | None = None

    @property
    def letters(self) -> str:
        """The option letters in order, e.g. "ABCD"."""
        return "".join(chr(ord("A") + i) for i in range(len(self.options)))

    @property
    def solution(self) -> str:
        """The answer in the dataset's form, as rewards expect it."""
        return f"<answer>{self.answer}</answer>"
