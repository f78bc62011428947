"""The model catalogue from `[[models]]`, and the quote the chat shows before the user confirms."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.config import ModelConfig

from ._exceptions import InvalidChoice, UnknownModel

__all__ = ["PHOTOS", "Catalogue", "Quote"]

# Photos each kind takes: (at least, at most). Try-on: a person, then 1..N clothing photos (the
# chat caps N by tier).
PHOTOS = {"text-to-video": (0, 0), "image-to-video": (1, 1), "try-on": (2, 11)}


@dataclass(frozen=True, slots=True)
class Quote:
    model: ModelConfig
    credits: int
    duration: int | None
    aspect_ratio: str | None


class Catalogue:
    """The enabled models, in config order."""

    def __init__(self, models: Iterable[ModelConfig]) -> None:
        self._models = {m.id: m for m in models if m.enabled}

    def offered(self, kind: str | None = None) -> list[ModelConfig]:
        return [m for m in self._models.values() if kind is None or m.kind == kind]

    def get(self, model_id: str) -> ModelConfig:
        try:
            return self._models[model_id]
        except KeyError:
            raise UnknownModel(model_id) from None

    def quote(self, model_id: str, *, duration: int | None = None,
              aspect_ratio: str | None = None) -> Quote:
        """The price of one job; the first offered duration and ratio when none is chosen."""
        model = self.get(model_id)
        if duration is None:
            duration = model.durations[0] if model.durations else None
        elif duration not in model.durations:
            raise InvalidChoice(f"{model.id} offers durations {list(model.durations)}")
        if aspect_ratio is None:
            aspect_ratio = model.aspect_ratios[0] if model.aspect_ratios else None
        elif aspect_ratio not in model.aspect_ratios:
            raise InvalidChoice(f"{model.id} offers aspect ratios {list(model.aspect_ratios)}")
        if model.credits is not None:
            credits = model.credits
        else:
            # The config refuses credits_per_second without durations.
            assert model.credits_per_second is not None
            assert duration is not None
            credits = model.credits_per_second * duration
        return Quote(model, credits, duration, aspect_ratio)
