"""Entry point of the ``cordillera`` command."""

from __future__ import annotations

import typer

from cordillera.cli.demo import demo
from cordillera.cli.eval import eval_command
from cordillera.cli.label import label
from cordillera.cli.model import model_app
from cordillera.cli.render import render
from cordillera.cli.report import report
from cordillera.cli.scenes import scenes_app
from cordillera.cli.serve import serve
from cordillera.cli.simulate import simulate
from cordillera.cli.train import train_app

app = typer.Typer(
    name="cordillera",
    help="Reasoning driving policies trained and evaluated in closed loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(scenes_app, name="scenes")
app.add_typer(model_app, name="model")
app.add_typer(train_app, name="train")
app.command()(demo)
app.command()(render)
app.command()(simulate)
app.command("eval")(eval_command)
app.command()(report)
app.command()(serve)
app.command()(label)


if __name__ == "__main__":
    app()
