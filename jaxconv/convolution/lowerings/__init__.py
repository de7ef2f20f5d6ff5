"""The lowerings, one module each, every one exporting a :class:`~jaxconv.convolution.Lowering`
called ``LOWERING`` (collected in :data:`jaxconv.convolution.LOWERINGS`)."""
