"""How rows become a model's inputs and targets: :class:`Recipe` (the article's shifts).

Re-exported by :mod:`segflow.config`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from storage.validation import invalid_argument, require_non_negative_int, require_positive_int

__all__ = ["Inputs", "Recipe"]

Inputs = Literal["features", "labels", "features_and_labels"]


class Recipe(BaseModel):
    """How rows become the model's inputs and targets: the article's shifted windows.

    At row ``t`` the model sees what is known at row ``t`` and predicts the label ``horizon``
    rows later:

    - ``inputs``: ``features`` (row t's features), ``labels`` (row t's label) or
      ``features_and_labels`` (both, concatenated; needs feature-vector frames);
    - ``horizon`` H: the target of row ``t`` is the label of row ``t + H``; rows whose target
      lies past the end of the labels take no loss, and their predictions are genuine
      forecasts. Label inputs need H >= 1 (a label cannot predict itself);
    - ``time_steps`` N: None streams the whole sequence through the stateful model; N trains
      and predicts a stateless model on windows of rows ``t-N+1 .. t``, ``batch_size`` windows
      per batch.

    Saved with the model: prediction uses the recipe the model was trained with.

    >>> Recipe(inputs="labels", horizon=1).describe()
    'labels of rows <= t -> label of row t+1, streamed statefully'
    >>> Recipe(inputs="labels")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Recipe
      Value error, Received an invalid value for argument `horizon`, expected an integer >= 1 ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: Inputs = Field(
        "features",
        description="What the model sees at row t: features, labels, or features_and_labels.",
    )
    horizon: int = Field(
        0, description="The target of row t is the label of row t + horizon (>= 1 with labels)."
    )
    time_steps: int | None = Field(
        None,
        description="None: stream statefully; N: a stateless model on windows of N rows.",
    )
    batch_size: int = Field(64, description="Windows per batch of a windowed (time_steps) model.")

    @field_validator("horizon")
    @classmethod
    def _check_horizon(cls, value: int) -> int:
        return require_non_negative_int("horizon", value)

    @field_validator("time_steps")
    @classmethod
    def _check_time_steps(cls, value: int | None) -> int | None:
        return None if value is None else require_positive_int("time_steps", value)

    @field_validator("batch_size")
    @classmethod
    def _check_batch_size(cls, value: int) -> int:
        return require_positive_int("batch_size", value)

    @model_validator(mode="after")
    def _check_label_horizon(self) -> Recipe:
        if self.inputs != "features" and self.horizon < 1:
            raise invalid_argument(
                "horizon",
                f"an integer >= 1 with inputs={self.inputs!r} (a label cannot predict itself)",
                self.horizon,
            )
        return self

    @property
    def windowed(self) -> bool:
        """Whether this is a stateless model on windows (``time_steps`` set)."""
        return self.time_steps is not None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Recipe:
        """The recipe a checkpoint cursor or an export manifest records under ``"recipe"``
        (runs from before recipes record none: the default recipe).

        >>> Recipe.from_record({}) == Recipe()
        True
        """
        return cls.model_validate(record.get("recipe") or {})

    def trains_like(self, other: Recipe) -> bool:
        """Whether two recipes train the same way (``batch_size`` matters to windows only).

        >>> Recipe(batch_size=8).trains_like(Recipe())
        True
        """
        ignore = set() if self.windowed or other.windowed else {"batch_size"}
        return self.model_dump(exclude=ignore) == other.model_dump(exclude=ignore)

    def describe(self) -> str:
        """One line saying what predicts what."""
        seen = {"features": "features", "labels": "labels"}.get(self.inputs, "features+labels")
        rows = "rows <= t" if self.time_steps is None else f"rows t-{self.time_steps - 1}..t"
        target = "t" if self.horizon == 0 else f"t+{self.horizon}"
        how = "streamed statefully" if self.time_steps is None else "windowed, stateless"
        return f"{seen} of {rows} -> label of row {target}, {how}"
