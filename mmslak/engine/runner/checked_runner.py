from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from mmslak.checkpoint import STRIP_MODULE, load_weights, read_checkpoint
from mmslak.registry import RUNNERS


@RUNNERS.register_module()
class CheckedRunner(Runner):
    """mmengine's ``Runner`` that loads a checkpoint only if it fits the whole model.

    This covers ``load_from``, ``resume`` and the checkpoint of ``tools/test.py``. mmengine
    loads with ``strict=False``: a checkpoint of another architecture leaves the layers it does
    not fit randomly initialised behind a log line, and a test or a training then runs on them.
    This runner loads through the checkpoint pipeline (:func:`mmslak.checkpoint.load_weights`),
    which raises instead, naming the keys and the likely cause; the config option
    ``load_strict=False`` loads what fits, with a warning. It also refuses NaN or infinite
    values (config option ``allow_non_finite=True`` loads them, with a warning) and integer
    tensors for floating-point ones. The tools build :class:`ToolRunner`, a subclass.
    """

    def load_checkpoint(self, filename, map_location='cpu', strict=False,
                        revise_keys=STRIP_MODULE):
        """Load ``filename`` into the model if it fits (see the class docstring).

        Args:
            filename (str): Path or URL of the checkpoint.
            map_location (str | Callable): Where to put the tensors. Defaults to ``'cpu'``.
            strict (bool): Refuse any mismatch even with ``load_strict=False``.
                Defaults to False.
            revise_keys (Sequence[tuple[str, str]]): ``(pattern, replacement)`` applied to the
                keys. Defaults to stripping ``module.``.

        Returns:
            dict: The checkpoint.

        Raises:
            ValueError: If the checkpoint does not fit the model, holds non-finite values or
                integer tensors for floating-point ones.
        """
        checkpoint = read_checkpoint(filename, map_location=map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        load_weights(model, filename, strict=strict or self.cfg.get('load_strict', True),
                     allow_non_finite=self.cfg.get('allow_non_finite', False),
                     opt_out='--cfg-options load_strict=False', checkpoint=checkpoint,
                     revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint
