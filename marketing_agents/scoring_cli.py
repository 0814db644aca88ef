"""The ``train``, ``score`` and ``models`` verbs of ``marketing-agents``, ready to be added to its parser.

``marketing_agents.cli.build_parser`` wires them with one call::

    from marketing_agents.scoring_cli import add_scoring_verbs
    add_scoring_verbs(verbs)          # verbs = parser.add_subparsers(...)

Each handler has the CLI's handler signature ``(args, settings) -> int`` and uses the registry at
``settings.data_path / "models"``. Bad input raises a ``ScoringError``, which is a
``MarketingAgentsError``, so ``cli.main`` prints ``error: <message>`` and exits 1. Heavy imports
(scikit-learn, matplotlib) happen inside the handlers, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys

from marketing_agents.cli_args import bounded_int


def registry_for(settings):
    from marketing_agents.scoring_models.registry import ModelRegistry

    return ModelRegistry(settings.data_path / "models")


def train_command(args: argparse.Namespace, settings) -> int:
    from marketing_agents.scoring_models.training import train_file

    def say(line: str) -> None:
        print(line, flush=True)

    if args.from_conversions:
        if args.label is not None or args.id is not None:
            args.usage_error("--label and --id go with --data; --from-conversions labels each lead by whether it "
                             "converted and identifies it by its lead id")
        from marketing_agents.flows.conversion_training import train_from_conversions
        from marketing_agents.scoring_models.conversions import DEFAULT_WINDOW_DAYS
        from marketing_agents.stores.connections import redact
        from marketing_agents.stores.embedded import postgres_dsn_for

        dsn = postgres_dsn_for(settings)
        result = train_from_conversions(dsn, args.out, window_days=args.window_days or DEFAULT_WINDOW_DAYS,
                                        cv=args.cv, source_name=redact(dsn), progress=say)
    else:
        if args.label is None:
            args.usage_error("--label is required with --data")
        if args.window_days is not None:
            args.usage_error("--window-days goes with --from-conversions")
        result = train_file(args.data, args.label, args.out, id_column=args.id, cv=args.cv, progress=say)
    print(result.summary())
    if args.register or args.promote:
        registry = registry_for(settings)
        version = registry.register(args.out)
        print(f"registered as {version} in {registry.root}")
        if args.promote:
            registry.promote(version)
            print(f"{version} is now the active model")
    return 0


def score_command(args: argparse.Namespace, settings) -> int:
    from marketing_agents.scoring_models.scoring import score_file

    report = score_file(args.model, args.data, args.out, args.id, registry=registry_for(settings),
                        explain=not args.no_explain)
    print(report.summary())
    return 0


def models_command(args: argparse.Namespace, settings) -> int:
    registry = registry_for(settings)
    if args.action == "list":
        rows = [{"version": v.name, "active": v.active, "synthetic": v.synthetic, "model": v.model_kind,
                 "roc_auc": v.roc_auc, "pr_auc": v.pr_auc, "registered_at": v.registered_at}
                for v in registry.list()]
        print(json.dumps({"root": str(registry.root), "active": registry.active(), "history": registry.history(),
                          "versions": rows}, indent=2))
    elif args.action == "register":
        version = registry.register(args.directory)
        print(f"registered {args.directory} as {version}")
        if args.promote:
            registry.promote(version)
            print(f"{version} is now the active model")
    elif args.action == "promote":
        registry.promote(args.version)
        print(f"{args.version} is now the active model")
    elif args.action == "rollback":
        print(f"rolled back: {registry.rollback()} is now the active model")
    elif args.action == "ensure-default":
        from marketing_agents.scoring_models.synthetic import ensure_default_model

        version = ensure_default_model(registry, rows=args.rows, seed=args.seed,
                                       progress=lambda line: print(line, flush=True))
        print(f"active model: {version}" if version else
              "the registry has versions but none is active: promote one with `models promote VERSION`")
    return 0


def add_scoring_verbs(verbs) -> None:
    """Adds ``train``, ``score`` and ``models`` to the ``add_subparsers`` object of the CLI parser."""
    train = verbs.add_parser(
        "train", help="train a calibrated lead-conversion model from a CSV/Parquet table with a binary label, "
                      "or from the conversions of the running system",
        description="Picks preprocessing by column type (numeric: median impute + missing indicator + "
                    "scaling; categorical: constant impute + one-hot with rare categories grouped; the id column, "
                    "constant, identifier-like and date columns are dropped), compares logistic regression with "
                    "gradient-boosted trees by stratified cross-validated PR-AUC, calibrates the better one and "
                    "writes model.joblib, model.json, metrics.json (out-of-fold ROC-AUC, PR-AUC, Brier, capture "
                    "and lift at 5/10/20/30%), gains.png and MODEL_CARD.md to --out. With --from-conversions the "
                    "table is the system's own leads (MAS_POSTGRES_DSN, else the running embedded PostgreSQL) "
                    "created at least --window-days ago, labelled by whether they converted within that many "
                    "days, with the features the triage agent gives the model.")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="FILE", help=".csv, .tsv or .parquet with a header row")
    source.add_argument("--from-conversions", action="store_true",
                        help="train from the leads and conversions tables of the running system")
    train.add_argument("--label", metavar="COLUMN", help="with --data: binary label column, 0/1, true/false or yes/no")
    train.add_argument("--window-days", type=bounded_int(1, 3650, "days"), metavar="N",
                       help="with --from-conversions: a lead counts as converted when it converted within N days "
                            "of its creation; younger leads are left out (default 90)")
    train.add_argument("--out", required=True, metavar="DIR", help="directory for the artifacts")
    train.add_argument("--id", metavar="COLUMN", help="lead id column (not used as a feature)")
    train.add_argument("--cv", type=bounded_int(2, what="folds"), default=5, metavar="K",
                       help="cross-validation folds (default 5)")
    train.add_argument("--register", action="store_true", help="also register the model in MAS_DATA_DIR/models")
    train.add_argument("--promote", action="store_true", help="register and make it the active model")
    train.set_defaults(handler=train_command, usage_error=train.error)

    score = verbs.add_parser(
        "score", help="score a CSV/Parquet table of leads with a trained model into a CSV file",
        description="Writes one row per lead: the id (--id, else the model's id column if present, else the row "
                    "number), the calibrated probability, lead_score (0..100) and the top 3 factors for and "
                    "against, e.g. 'industry=software (+0.42)' (log-odds).")
    score.add_argument("--model", required=True, metavar="DIR_OR_VERSION",
                       help="a trained model directory, a registry version, or 'active'")
    score.add_argument("--data", required=True, metavar="FILE")
    score.add_argument("--out", required=True, metavar="FILE.csv")
    score.add_argument("--id", metavar="COLUMN", help="column to copy into the output as the lead id")
    score.add_argument("--no-explain", action="store_true", help="skip the per-row factors (faster)")
    score.set_defaults(handler=score_command)

    models = verbs.add_parser("models", help="list, register, promote or roll back scoring model versions",
                              description="The model registry in MAS_DATA_DIR/models.")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="print the versions, the active one and the history as JSON")
    register = actions.add_parser("register", help="register a trained model directory as a new version")
    register.add_argument("directory", metavar="DIR")
    register.add_argument("--promote", action="store_true", help="and make it the active model")
    promote = actions.add_parser("promote", help="make a version the active model")
    promote.add_argument("version", metavar="VERSION")
    actions.add_parser("rollback", help="re-activate the previously active version")
    default = actions.add_parser("ensure-default",
                                 help="train and activate the synthetic default model if the registry is empty")
    default.add_argument("--rows", type=bounded_int(1, what="rows"), default=20_000, metavar="N")
    default.add_argument("--seed", type=int, default=7)
    models.set_defaults(handler=models_command)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry for these verbs (``python -m marketing_agents.scoring_cli``)."""
    from marketing_agents.errors import MarketingAgentsError
    from marketing_agents.settings import Settings

    parser = argparse.ArgumentParser(prog="marketing-agents")
    add_scoring_verbs(parser.add_subparsers(dest="verb", required=True, metavar="VERB"))
    args = parser.parse_args(argv)
    try:
        return args.handler(args, Settings())
    except MarketingAgentsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
