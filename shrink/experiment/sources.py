"""Where a trial's base comes from: ``pretrain``, ``torchvision[:<WEIGHTS>]`` or a state-dict file.

- ``pretrain`` (the default): shrink trains it with the dataset family's recipe (``bases.pretrain``).
- ``torchvision`` or ``torchvision:<WEIGHTS>``: torchvision's published weights for the model
  (``shrink.models.published``); ``torchvision`` alone means the model's ``DEFAULT`` weights, recorded
  under their real name.
- any other value: a path to a state-dict file (read with ``weights_only=True``).

Bases from torchvision or a file were trained elsewhere, on data that includes shrink's validation
carve-out (torchvision's ImageNet weights saw the whole training set): ``trained_elsewhere`` says so,
and the sidecar, the report and the checklist say it too.

:meth:`BaseSource.check` and :meth:`BaseSource.check_data` are the cheap checks made before any work
(no weights are read beyond the file's keys and shapes, no model is allocated); every failure is a
one-line :class:`ConfigError` naming the base and what it does not fit.
"""

from dataclasses import dataclass
from pathlib import Path

from shrink.experiment.errors import ConfigError

PRETRAIN = "pretrain"
TORCHVISION = "torchvision"


@dataclass(frozen=True)
class BaseSource:
    """A parsed ``base:`` value: ``kind`` (``pretrain``, ``torchvision`` or ``file``), the torchvision
    weights name (``None``: the model's default) or the file's absolute path."""

    kind: str
    weights: str | None = None
    path: Path | None = None

    @classmethod
    def parse(cls, value: str) -> "BaseSource":
        """Read a ``base:`` value (anything but the first two forms is a path, made absolute here;
        whether the file exists is :meth:`check`'s to say, on the machine that reads it)."""
        if not isinstance(value, str) or not value:
            raise ConfigError(f"base: {value!r} is not a base; give {_FORMS}", key="base")
        if value == PRETRAIN:
            return cls(PRETRAIN)
        if value == TORCHVISION or value.startswith(TORCHVISION + ":"):
            weights = value.partition(":")[2] or None
            return cls(TORCHVISION, weights=weights)
        return cls("file", path=Path(value).expanduser().resolve())

    def __str__(self) -> str:
        """The value as a sweep file would give it (``torchvision`` for the default weights)."""
        if self.kind == TORCHVISION:
            return TORCHVISION + (f":{self.weights}" if self.weights else "")
        return str(self.path) if self.kind == "file" else PRETRAIN

    @property
    def trained_elsewhere(self) -> bool:
        """Whether the base was trained outside shrink, on data that included the validation carve-out."""
        return self.kind != PRETRAIN

    def published(self, model: str):
        """The torchvision weights this source names for ``model`` (``ConfigError`` when it has none)."""
        from shrink import models

        try:
            return models.published_weights(model, self.weights)
        except ValueError as error:
            raise ConfigError(f"base {self}: {error}", key="base") from None

    def check(self, model: str, dataset: str) -> None:
        """What needs no dataset files: the model has the named published weights, or shrink has a
        recipe for the dataset's family."""
        from shrink import datasets

        if self.kind == TORCHVISION:
            self.published(model)
        elif self.kind == "file" and not self.path.is_file():
            raise ConfigError(f"base: {str(self)!r} is neither {PRETRAIN!r}, nor torchvision[:<WEIGHTS>], nor an "
                              "existing state-dict file", key="base")
        elif self.kind == PRETRAIN:
            from shrink.experiment.recipes import recipe_for

            recipe_for(datasets.info(dataset).family)

    def check_data(self, model: str, dataset: str, data_root: str | None, weights: bytes | None = None) -> None:
        """What needs the dataset's files (found, never downloaded) and the weights: the class counts
        agree, the file fits the model (``weights``: its bytes, when read already), published weights are
        cached or reachable."""
        from shrink import datasets, models

        if self.kind == PRETRAIN:
            return
        classes = datasets.class_count(dataset, data_root)
        if self.kind == TORCHVISION:
            published = self.published(model)
            if published.num_classes != classes:
                where = datasets.locate(dataset, data_root)
                raise ConfigError(f"base {self}: {model} {published.name} has {published.num_classes} outputs but "
                                  f"{dataset} at {where} has {classes} classes", key="base")
            if weights is None:
                try:
                    models.check_reachable(published)
                except ValueError as error:
                    raise ConfigError(str(error), key="base") from None
                return
        try:
            models.check_weights(model, self.path if weights is None else weights, classes,
                                 input_shape=datasets.info(dataset).input_shape, label=self.label(model))
        except ValueError as error:
            raise ConfigError(f"base {self}: {error} ({dataset} has {classes} classes)", key="base") from None

    def label(self, model: str) -> str:
        """What the record says the base is: ``pretrain``, ``torchvision:<WEIGHTS>`` (the real name, also
        for the default weights) or ``file:<path>``."""
        if self.kind == TORCHVISION:
            return self.published(model).source
        return f"file:{self.path}" if self.kind == "file" else PRETRAIN

    def read(self, model: str) -> bytes:
        """The weights file's bytes, published weights fetched when they are not cached."""
        from shrink import models

        if self.kind == TORCHVISION:
            try:
                return models.fetch_weights(self.published(model)).read_bytes()
            except ValueError as error:
                raise ConfigError(str(error), key="base") from None
        if self.kind == "file":
            return self.path.read_bytes()
        raise ValueError("a pretrained base has no file to read; pretrain it")


_FORMS = f"{PRETRAIN!r}, 'torchvision', 'torchvision:<WEIGHTS>' (e.g. torchvision:IMAGENET1K_V1) or a state-dict file"
