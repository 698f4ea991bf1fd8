import logging
import re
from collections import OrderedDict

from mmengine.hooks import LoggerHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from mmslak.engine.hooks import MainProcessLoggerHook
from mmslak.models.backbones import SLaK
from mmslak.models.backbones.slak_checkpoint import likely_causes
from mmslak.registry import RUNNERS
from mmslak.utils import load_official_checkpoint
from mmslak.utils.checkpoint_checks import check_dtypes, check_finite, mismatch_details

BACKBONE_PREFIX = 'backbone.'


def state_dict_mismatch(model, state_dict):
    """How ``state_dict`` differs from the state of ``model``.

    Sparse-weight masks absent from ``state_dict`` do not count: the model derives them from
    the zeros of the weights when it loads.

    Args:
        model (nn.Module): The model to load into.
        state_dict (dict): The tensors to load, keys as in ``model.state_dict()``.

    Returns:
        tuple[list, list, list]: Keys missing from ``state_dict``, keys the model does not
        have, and ``(key, checkpoint shape, model shape)`` of the shape mismatches.
    """
    model_state = model.state_dict()
    missing = [key for key in model_state
               if key not in state_dict and not key.endswith('weight_mask')]
    unexpected = [key for key in state_dict if key not in model_state]
    mismatched = [(key, tuple(value.shape), tuple(model_state[key].shape))
                  for key, value in state_dict.items()
                  if key in model_state and hasattr(value, 'shape') and
                  value.shape != model_state[key].shape]
    return missing, unexpected, mismatched


def _model_causes(model, missing, unexpected, mismatched):
    """Guesses of why a whole-model checkpoint does not fit ``model``."""
    causes = []
    backbone = getattr(model, 'backbone', None)
    absent = set(missing)
    if any(BACKBONE_PREFIX + key in absent for key in unexpected):
        causes.append("it is a backbone-only checkpoint (its keys lack 'backbone.'): load it "
                      'with --cfg-options model.backbone.init_cfg.checkpoint=FILE, not as a '
                      'whole model')
    elif isinstance(backbone, SLaK):
        inside = [[key[len(BACKBONE_PREFIX):] for key in keys if key.startswith(BACKBONE_PREFIX)]
                  for keys in (missing, unexpected)]
        shapes = [(key[len(BACKBONE_PREFIX):], ckpt, own) for key, ckpt, own in mismatched
                  if key.startswith(BACKBONE_PREFIX)]
        if any(inside) or shapes:
            causes += ['backbone: ' + cause
                       for cause in likely_causes(backbone, *inside, shapes)]
    heads = sorted({key.split('.')[0] for key, *_ in mismatched
                    if not key.startswith(BACKBONE_PREFIX)})
    if heads:
        causes.append(f'{", ".join(heads)} differ in shape (another number of classes or '
                      'channels)')
    return causes or ['the checkpoint is of another model']


def check_fit(model, state_dict, filename, strict=True, opt_out=None):
    """Refuse a state dict that does not fit the whole model, or warn and let it load.

    Args:
        model (nn.Module): The model to load into.
        state_dict (dict): The tensors to load, keys as in ``model.state_dict()``.
        filename (str): The file they come from, for the message.
        strict (bool): Raise on any missing, unexpected or mis-shaped tensor; False logs a
            warning and the caller loads what fits. Defaults to True.
        opt_out (str, optional): How the user loads only what fits (e.g. ``'--no-strict'``),
            named in the error and the warning. Defaults to None.

    Raises:
        ValueError: If ``strict`` and the state dict does not fit.
    """
    missing, unexpected, mismatched = state_dict_mismatch(model, state_dict)
    if not (missing or unexpected or mismatched):
        return
    message = describe_mismatch(model, filename, missing, unexpected, mismatched)
    if strict:
        raise ValueError(message + (f'\nTo load only what fits (the rest of the model then keeps '
                                    f'its initialisation), pass {opt_out}' if opt_out else ''))
    print_log(f'{opt_out or "Not strict"}: loading only what fits, the rest of the model keeps '
              'its initialisation. ' + message, logger='current', level=logging.WARNING)


def describe_mismatch(model, filename, missing, unexpected, mismatched):
    """A message naming the file, the likely causes and the keys that do not fit.

    Args:
        model (nn.Module): The model loaded into.
        filename (str): The checkpoint.
        missing (list[str]): Keys of the model that the checkpoint lacks.
        unexpected (list[str]): Keys of the checkpoint that the model lacks.
        mismatched (list[tuple]): ``(key, checkpoint shape, model shape)``.

    Returns:
        str: The message.
    """
    causes = _model_causes(model, missing, unexpected, mismatched)
    return '\n'.join([f'Checkpoint {filename} does not fit the model; likely cause: ' +
                      '; '.join(causes) + '.'] + mismatch_details(missing, unexpected, mismatched))


@RUNNERS.register_module()
class CheckedRunner(Runner):
    """mmengine's ``Runner`` that checks what it reads: checkpoints and data files.

    It loads a checkpoint (``load_from``, ``resume``, the checkpoint of ``tools/test.py``) only
    if it fits the whole model, and its datasets name the files of a sample whose loading fails
    (:func:`mmslak.datasets.name_files_in_errors`: a corrupt PNG is otherwise reported as
    ``cannot identify image file <_io.BytesIO ...>``).

    mmengine loads with ``strict=False``: a checkpoint of another architecture leaves the
    layers it does not fit randomly initialised behind a log line, and a test or a training
    then runs on them. This runner raises instead, naming the keys and the likely cause; the
    config option ``load_strict=False`` loads what fits, with a warning. It also refuses NaN or
    infinite values (config option ``allow_non_finite=True`` loads them, with a warning) and
    integer tensors for floating-point ones. The file is read by
    :func:`mmslak.utils.load_official_checkpoint`, which names it in its errors.
    ``tools/train.py`` and ``tools/test.py`` build it unless the config names a
    ``runner_type``.
    """

    def register_hook(self, hook, priority=None):
        """Register ``hook``; a config of mmengine's ``LoggerHook`` builds
        :class:`~mmslak.engine.hooks.MainProcessLoggerHook` (one writer of the test metrics).

        Args:
            hook (Hook | dict): The hook or its config.
            priority (int | str | Priority, optional): Its priority. Defaults to None.
        """
        if isinstance(hook, dict) and hook.get('type') in ('LoggerHook', 'mmengine.LoggerHook',
                                                           LoggerHook):
            hook = dict(hook, type=MainProcessLoggerHook)
        super().register_hook(hook, priority)

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        """mmengine's data loader, whose dataset names the files in its errors.

        Args:
            dataloader (DataLoader | dict): A data loader or its config.
            seed (int, optional): Random seed of the workers. Defaults to None.
            diff_rank_seed (bool): Give each process another seed. Defaults to False.

        Returns:
            DataLoader: The data loader.
        """
        # imported here: mmslak.datasets needs pycocotools, which a model-only install lacks
        from mmslak.datasets import name_files_in_errors
        loader = Runner.build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        name_files_in_errors(loader.dataset)
        return loader

    def load_checkpoint(self, filename, map_location='cpu', strict=False,
                        revise_keys=[(r'^module\.', '')]):
        """Load ``filename`` into the model if it fits (see the class docstring).

        Args:
            filename (str): Path or URL of the checkpoint.
            map_location (str | Callable): Where to put the tensors. Defaults to ``'cpu'``.
            strict (bool): Refuse any mismatch even with ``load_strict=False``.
                Defaults to False.
            revise_keys (list[tuple[str, str]]): ``(pattern, replacement)`` applied to the
                keys. Defaults to stripping ``module.``.

        Returns:
            dict: The checkpoint.

        Raises:
            ValueError: If the checkpoint does not fit the model, holds non-finite values or
                integer tensors for floating-point ones.
        """
        checkpoint = load_official_checkpoint(filename, map_location=map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        state_dict = checkpoint.get('state_dict', checkpoint)
        for pattern, replacement in revise_keys:
            state_dict = OrderedDict(
                (re.sub(pattern, replacement, key), value) for key, value in state_dict.items())
        check_fit(model, state_dict, filename, strict or self.cfg.get('load_strict', True),
                  opt_out='--cfg-options load_strict=False')
        check_dtypes(state_dict, model.state_dict(), filename)
        check_finite(state_dict, filename, self.cfg.get('allow_non_finite', False))
        checkpoint = _load_checkpoint_to_model(model, checkpoint, False, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint
