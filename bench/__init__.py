"""jaxconv's benchmark harness: ``python -m bench [SUITE ...] [options]`` (``--help`` for all).

bench/ stands outside the package and uses jaxconv exactly as a user would; jaxconv never
imports it. With no arguments it runs the ``bottleneck`` suite (the seed's Inception 4a 5×5
branch over batches 1, 8, 32), with PyTorch as a peer where it is installed (else one line says
how to add it; ``--peers torch|none`` decides), and writes ``bottleneck.{json,md,png}`` into a
fresh folder under the system's temporary directory (``--out DIR`` elsewhere;
``--update-results`` over the committed ``bench/results/<device-kind>/``), ``<device-kind>``
being :func:`jaxconv.convolution.device_kind`
(``cpu-x86_64-avx2-2c``: architecture, widest vector ISA and core count; ``gpu-nvidia-h200``),
so machines of different kinds keep their own results.

Every suite ends with its peer table: jaxconv's default path against each peer it was measured
against — torch, and plain lax where the suite times it — as peer time / jaxconv time (> 1:
jaxconv is faster), the median, the worst and the conv or model where it is worst, per pass and
dtype. The Markdown page opens with the same table, and the PNG draws it: one sorted bar per
conv or model against its fastest peer. ``--replot DIR`` redraws the PNG and the page from the
JSON in DIR, timing nothing.

Layout:
  ``__main__.py``   the command line (argparse; bad flags are one-line errors, exit 2).
  ``_harness.py``   :class:`~bench._harness.Options`, :class:`~bench._harness.Context`, timing
                    (lower / compile / run separately, warm-up, ``block_until_ready``, variants
                    interleaved round-robin), the GEMM-peak and bandwidth probes, env record.
  ``_fusion.py``    the fusion report read from ``compiled.as_text()``.
  ``_compare.py``   jaxconv against its peers, from the records: the peer table's numbers and
                    the fastest peer per row.
  ``_report.py``    JSON, Markdown page, the PNG peer plot, the terminal tables.
  ``_peers.py``     the torch peer (imported only when it runs; never a jaxconv dependency).
  ``suites/``       one module per suite and the registry ``bench.suites.REGISTRY``.

Adding a suite: write ``bench/suites/<name>.py`` with ``run(ctx) -> list[dict]`` and add
``"<name>": <name>.run`` to ``REGISTRY`` in ``bench/suites/__init__.py``. Inside ``run``:

  - ``ctx.options`` (batches, dtypes, quick, full, …); ``ctx.batches(default)`` gives the sweep;
  - ``for case in ctx.track(grid, label)`` drives the progress bar;
  - ``c = ctx.compile(fn, *args)`` lowers and compiles under jit (``c.lower_s``, ``c.compile_s``,
    ``c.xla_flops``, ``c.xla_bytes``, ``c.peak_bytes``, ``c.fusion``) and ``c()`` runs it;
  - ``ctx.time({"variant": runner, …})`` times zero-argument runners round-robin;
  - ``ctx.record(suite, variant, default=…, batch=…, dtype=…, timing=…, macs=…, compiled=c,
    **extra)`` builds a record; ``ctx.note(text)`` adds a line to the summary;
  - ``ctx.peer`` is the torch peer (else None): record its rows with ``peer="torch"`` and
    ``ratio_vs_jaxconv``, and give jaxconv's default records of plain-lax suites
    ``speedup_vs_lax``, so the peer table finds them; name a suite that times a torch peer in
    ``PEER_SUITES`` (``bench/__main__.py``), and one with a ``--full`` sweep in ``FULL_SUITES``.

Record format (one JSON file per suite: ``{"suite", "env", "options", "notes", "records"}``).
Every record has:

  ``suite``, ``variant``; ``default`` (True for what jaxconv's public API does with default
  arguments under jit); ``batch``; ``dtype``; ``median_s``, ``min_s``, ``max_s`` (seconds per
  call over ``repeats`` runs after warm-up); ``macs`` (analytic, every tap counted — the papers'
  ops); ``xla_flops`` (``cost_analysis()``, skips padding taps; None for peers and for programs
  with custom calls, e.g. oneDNN convs, whose work XLA does not count); ``gflops``
  (``2·macs / median_s``, so ops per second in the papers' convention).

Most also have ``peak_fraction`` (``gflops`` / the GEMM peak measured in the same run),
``lower_s``, ``compile_s``, ``xla_bytes``, ``peak_bytes`` (``memory_analysis``), ``kernels``,
``fusions`` and ``fusion`` (the report), ``layer`` (the shape's name, e.g. ``inception_4a``),
``pass`` (``fwd``, ``fwd+bwd``) where a suite times several, and suite-specific keys:
``speedup_vs_<baseline>`` (the first such key gets a table column; ``speedup_vs_lax`` and
conv1x1's ``speedup_vs_lax_conv`` are plain lax's time over the variant's, the peer plain lax),
``analytic_ratio``, ``roofline_s`` / ``roofline_fraction``, ``info`` (timed to explain, never
compared), ``peer`` and ``ratio_vs_jaxconv`` (peer time / jaxconv's default time: > 1 means
jaxconv is faster) on a peer's rows, ``speed_vs_torch`` (torch time / this variant's time) on
jaxconv's.
The env block holds jax's device kind and jaxconv's (``jaxconv_device_kind``, the results
folder), platform, CPU model and core count, jax/jaxlib versions, XLA_FLAGS, the date, the GEMM
peak and the memory bandwidth.
"""
