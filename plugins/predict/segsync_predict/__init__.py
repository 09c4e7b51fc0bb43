"""segsync-predict: churn risk, purchase propensity and best send hour as segment functions.

segsync imports this module at every start (``segsync --help`` included), so it imports nothing
heavy: scikit-learn, numpy and the rule compiler's modules are imported inside the hooks.
"""

from __future__ import annotations

from segsync import hookimpl


@hookimpl
def segsync_register_segment_functions(register) -> None:  # noqa: ANN001 - pluggy hook
    from segsync_predict.functions import predictive_functions

    for function in predictive_functions():
        register(function)


@hookimpl
def segsync_score_contacts(scores) -> None:  # noqa: ANN001 - pluggy hook
    from segsync_predict.scoring import score_run

    score_run(scores)


@hookimpl
def segsync_register_commands(cli) -> None:  # noqa: ANN001 - pluggy hook
    from segsync_predict.command import predict

    cli.add_command(predict)
