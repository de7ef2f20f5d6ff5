"""The lowerings, one module each, every one exporting a :class:`~jaxconv.kernels.Lowering`
called ``LOWERING`` (collected in :data:`jaxconv.kernels.LOWERINGS`)."""
