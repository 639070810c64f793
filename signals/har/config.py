"""FusionActNet's config dataclasses: the network and the training recipe. Torch-free.

They live apart from ``model.py`` / ``train.py`` so the command line (options derived from these
fields by :func:`signals.configio.add_arguments`) and the runtime can import them without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FusionActNetConfig:
    in_channels: int = 9
    window: int = 128  # samples per window (the graph accepts any T >= 2**len(branch_widths))
    static_classes: tuple[int, ...] = (3, 4, 5)  # indices into the dataset's class list
    dynamic_classes: tuple[int, ...] = (0, 1, 2)
    branch_widths: tuple[int, ...] = (64, 128, 256, 512, 512)
    kernel_size: int = 3
    guide_stem: int = 32
    guide_widths: tuple[int, ...] = (64, 128, 256)
    guide_depths: tuple[int, ...] = (2, 3, 3)
    dropout: float = 0.0  # before each branch head
    members: int = 1  # seed ensemble: probabilities of `members` independent FusionActNets averaged
    # average-pool the normalised input by this factor before the branches and the guidance net (2: the
    # 50 Hz windows are seen at 25 Hz, which keeps the body-motion band and halves every layer's cost)
    decimate: int = 1

    @property
    def n_classes(self) -> int:
        return len(self.static_classes) + len(self.dynamic_classes)

    def __post_init__(self) -> None:
        if self.decimate < 1 or self.window // self.decimate < 2 ** len(self.branch_widths):
            raise ValueError(f"decimate {self.decimate} leaves {self.window // max(self.decimate, 1)} of the "
                             f"{self.window} samples, fewer than the {2 ** len(self.branch_widths)} that "
                             f"{len(self.branch_widths)} pooling blocks need")
        both = set(self.static_classes) | set(self.dynamic_classes)
        if set(self.static_classes) & set(self.dynamic_classes) or both != set(range(len(both))):
            raise ValueError(
                f"static {self.static_classes} and dynamic {self.dynamic_classes} classes must "
                f"partition 0..K-1"
            )


STAGES = ("static", "dynamic", "fusion")  # the training stages of each member, in order


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 25  # static branch (the hard one: SITTING vs STANDING); early stopping on validation
    dynamic_epochs: int = 10  # dynamic branch: reaches ~100 % validation accuracy within a few epochs
    fusion_epochs: int = 2  # guidance net (branches frozen): converges in 1-2 epochs
    batch_size: int = 64
    lr: float = 2e-3  # AdamW peak LR, one-cycle schedule
    fusion_lr: float = 2e-3
    weight_decay: float = 5e-2
    label_smoothing: float = 0.1
    patience: int = 12  # epochs without a better validation accuracy before a stage stops
    val_subjects: int = 4  # training subjects held out for validation
    val_seed: int = 0  # which ones (fixed, so every seed sees the same validation split)
    # augmentation (raw units, per window): the three xyz groups share one random rotation
    aug_rotate_deg: float = 40.0  # swept on validation folds: 0 / 10 / 25 / 40 -> 0.950 / 0.971 / 0.981 / 0.985
    aug_scale: float = 0.1  # std of a per-window, per-sensor gain around 1
    aug_jitter: float = 0.03  # Gaussian noise, in units of each channel's std
    aug_shift: int = 8  # max time shift in samples (edge padded)
    # time scaling (cadence), dynamic-branch stage only: each window resampled about its centre by a factor
    # uniform in [1 - a, 1 + a] (edge padded), so a gait is also seen slower and faster than its subject
    # walked it (postures have no cadence); 0: off
    aug_time_scale: float = 0.0
    ema_decay: float = 0.0  # > 0: validate and keep an exponential moving average of the weights (0: off)
    seeds: tuple[int, ...] = (0,)  # one ensemble member per seed
    # knowledge distillation (FusionActNet-Lite): a trained HAR model folder whose outputs on the same
    # augmented training batches are soft targets: its static / dynamic branch distributions in the branch
    # stages, its fused distribution in the fusion stage. None: labels only.
    teacher: str | None = None
    kd_weight: float = 0.7  # loss = (1 - kd_weight) * label loss + kd_weight * T^2 * KL(teacher_T || student_T)
    kd_temperature: float = 2.0  # T: both distributions softened by T before the KL
    # the stages that distil (the others learn from the labels alone): all three for FusionActNet-Lite; the
    # dynamic stage alone for a born-again full-size model whose other stages keep the plain recipe
    kd_stages: tuple[str, ...] = STAGES
    threads: int = 1  # torch CPU threads: on 2 cores shared with other jobs, 1 is >2x faster than 2
    # in_channels, window, members and the class split are taken from the data and the seeds
    model: FusionActNetConfig = field(default_factory=FusionActNetConfig)
