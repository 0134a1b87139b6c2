"""One module per ``zoo`` command (as MACE's ``mace/cli``): each declares ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> exit code``; :mod:`zoo.cli` only assembles them.
A new command is a new module here, added to :data:`COMMANDS`. Heavy imports stay inside
``run`` so that ``zoo --help`` is quick."""

from zoo.commands import (
    benchmark,
    compare,
    dashboard,
    ensemble,
    import_cgcnn,
    models,
    predict,
    pretrained,
    runs,
    screen,
    train,
    tune,
    ui,
)

COMMANDS = (train, predict, screen, tune, benchmark, ensemble, pretrained, runs, compare, models,
            import_cgcnn, ui, dashboard)  # fmt: skip
