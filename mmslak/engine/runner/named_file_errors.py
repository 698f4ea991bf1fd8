"""A runner piece: the datasets of its data loaders name the files of a sample that fails."""


class NamedFileErrorsMixin:
    """Runner mixin: each data loader's dataset names the sample's files in its errors.

    A corrupt PNG is otherwise reported as ``cannot identify image file <_io.BytesIO ...>``
    (:func:`mmslak.datasets.name_files_in_errors`). The wrapping happens when the loader is
    built, before any worker copies the dataset.
    """

    @classmethod
    def build_dataloader(cls, dataloader, seed=None, diff_rank_seed=False):
        """The runner's data loader, whose dataset names the files in its errors.

        Args:
            dataloader (DataLoader | dict): A data loader or its config.
            seed (int, optional): Random seed of the workers. Defaults to None.
            diff_rank_seed (bool): Give each process another seed. Defaults to False.

        Returns:
            DataLoader: The data loader.
        """
        # imported here: mmslak.datasets needs pycocotools, which a model-only install lacks
        from mmslak.datasets import name_files_in_errors
        loader = super().build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        name_files_in_errors(loader.dataset)
        return loader
