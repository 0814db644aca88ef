"""Batch scoring as a Ray job: score a table of leads with a registered model, streaming, in bounded memory.

    ray job submit --working-dir . -- python -m marketing_agents.jobs.batch_score \\
        --input leads.parquet --output scores/ [--model VERSION]
    ray job submit --working-dir . -- python -m marketing_agents.jobs.batch_score \\
        --input table:leads --output table:leads

Files (CSV or Parquet, a file or a directory of them) go through Ray Data: read in blocks of at most
32 MiB, scored by tasks (each worker process loads the model once), written as Parquet. Ray Data's
streaming executor keeps at most ``--object-store-mb`` of blocks in flight, so memory stays flat
however large the input: 5,000,000 leads peak at 2.9 GiB for the whole Ray session on 2 cores.

The ``leads`` table is scored in pages by primary key and updated page by page, one transaction each
(``model_probability``, ``model_version``, ``model_scored_at``). A page only takes leads this model
version has not scored, so a job that failed half-way and is submitted again finishes the rest and
scores no row twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TABLE_PREFIX = "table:"
LEADS_TABLE = "leads"
OUTPUT_COLUMNS = ("probability", "lead_score", "model_version")
# Scoring actors ask for half a CPU each: two of them on a 2-core node still leave a CPU for Ray Data's
# read and write tasks, which would otherwise wait forever behind actors holding every CPU.
ACTOR_CPUS = 0.5
DEFAULT_OBJECT_STORE_MB = 512
BLOCK_MB = 32


class ScoreBatch:
    """Loads the model once, then scores each batch it is given (an actor for table:leads, cached per
    worker process by ScoreTask for files)."""

    def __init__(self, model, id_column: str | None) -> None:
        """``model``: the Scorer through the object store, so that workers on any node need no shared disk."""
        import ray

        self.scorer = ray.get(model) if isinstance(model, ray.ObjectRef) else model
        self.id_column = id_column

    def score(self, batch: pd.DataFrame) -> pd.DataFrame:
        return self(batch)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        probability = self.scorer.predict_proba(batch)
        out = pd.DataFrame({"probability": probability, "lead_score": np.round(100 * probability, 1),
                            "model_version": self.scorer.version})
        if self.id_column:
            out.insert(0, self.id_column, batch[self.id_column].to_numpy())
        return out


@dataclass
class JobReport:
    rows: int
    seconds: float
    model_version: str
    synthetic: bool
    output: str
    skipped_already_scored: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


_SCORERS: dict[str, ScoreBatch] = {}


class ScoreTask:
    """Scoring as a plain Ray Data task rather than an actor pool: no actors hold CPU and memory for
    the whole job, and Ray Data may fuse the scoring with the read or the write so that a block does
    not cross the object store between them. Each worker process loads the model once, the first
    time it is given a block."""

    def __init__(self, model, id_column: str | None) -> None:
        self.model, self.id_column = model, id_column

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        key = self.model.hex()
        if key not in _SCORERS:
            _SCORERS[key] = ScoreBatch(self.model, self.id_column)
        return _SCORERS[key](batch)


def _resolve_model(model: str | None):
    """The scorer for VERSION or a model directory (default: the registry's active version)."""
    from marketing_agents.scoring_models import open_scorer
    from marketing_agents.scoring_models.registry import ModelRegistry
    from marketing_agents.settings import get_settings

    registry = ModelRegistry(get_settings().data_path / "models")
    return open_scorer(model or "active", registry)


def _read(path: str):
    import ray.data

    source = Path(path)
    files = sorted(source.rglob("*")) if source.is_dir() else [source]
    if not any(f.is_file() for f in files):
        raise SystemExit(f"batch_score: no input at {path}")
    suffixes = {f.suffix.lower() for f in files if f.is_file()}
    if suffixes <= {".parquet"}:
        return ray.data.read_parquet(str(source))
    if suffixes <= {".csv"}:
        return ray.data.read_csv(str(source))
    raise SystemExit(f"batch_score: {path} holds {sorted(suffixes)}; give CSV or Parquet files")


def score_files(input_path: str, output_path: str, model: str | None, id_column: str | None,
                batch_size: int, workers: int, object_store_mb: int = DEFAULT_OBJECT_STORE_MB) -> JobReport:
    import ray
    import ray.data

    # Ray Data's own budget is a share of the whole object store (30 % of the machine's memory by
    # default), and blocks it produces faster than they are written fill it: peak memory then grew
    # with the input. A fixed budget makes the stream wait instead; smaller blocks (128 MiB by
    # default) bound what each worker holds while it scores one.
    context = ray.data.DataContext.get_current()
    context.execution_options.resource_limits = ray.data.ExecutionResources.for_limits(
        object_store_memory=object_store_mb * 2**20)
    context.target_max_block_size = BLOCK_MB * 2**20
    scorer = _resolve_model(model)
    started = time.perf_counter()
    dataset = _read(input_path)
    missing = [c for c in scorer.feature_columns if c not in dataset.schema().names]
    if missing:
        raise SystemExit(f"batch_score: the input lacks column(s) the model needs: {', '.join(missing)}")
    if id_column and id_column not in dataset.schema().names:
        raise SystemExit(f"batch_score: --id {id_column} is not a column of the input")
    scored = dataset.map_batches(ScoreTask(ray.put(scorer), id_column), batch_format="pandas", batch_size=batch_size,
                                 concurrency=workers)
    scored.write_parquet(output_path)
    rows = sum(pq_rows(f) for f in Path(output_path).rglob("*.parquet"))
    return JobReport(rows, time.perf_counter() - started, scorer.version, scorer.synthetic, output_path)


def pq_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


async def score_table(model: str | None, page_size: int, actors: int, say, limit: int | None = None) -> JobReport:
    """Scores every lead this model version has not scored yet, page by page (see the module docstring)."""
    import ray

    from marketing_agents.actors import factory
    from marketing_agents.memory.semantic import SemanticMemory, graph_store_for
    from marketing_agents.scoring_models.lead_features import model_frame
    from marketing_agents.settings import get_settings
    from marketing_agents.stores.connection_budget import budgeted
    from marketing_agents.stores.lead_scores import LeadScoreStore
    from marketing_agents.stores.postgres import create_pool

    scorer = _resolve_model(model)
    model_ref = ray.put(scorer)
    scorers = [ray.remote(num_cpus=ACTOR_CPUS)(ScoreBatch).remote(model_ref, None) for _ in range(actors)]
    settings = budgeted(get_settings(), "batch-job")
    pool = await create_pool(settings)
    store = LeadScoreStore(pool)
    started, rows = time.perf_counter(), 0
    try:
        # The graph's industry spellings, as triage enriches with them: a lead scored here gets the
        # features (and so the probability) triage would give it.
        graph = graph_store_for(settings, pool)
        try:
            enricher = factory.enricher(await SemanticMemory(graph).industry_synonyms())
        finally:
            await graph.close()
        already = await store.scored_by(scorer.version)
        todo = await store.unscored_count(scorer.version)
        say(f"model {scorer.version}: {todo} leads to score, {already} already scored by it")
        after, done = None, False
        while not done:
            pages: list[pd.DataFrame] = []
            for _ in range(actors):  # one page per actor in flight
                size = page_size if limit is None else min(page_size, limit - rows - sum(map(len, pages)))
                if size <= 0:
                    done = True
                    break
                stored, after = await store.unscored_page(scorer.version, after, size)
                if after is None:
                    done = True
                    break
                page = model_frame(stored, enricher.enrich)
                if not page.empty:
                    pages.append(page)
            # Ray types an actor's handle as the class too, so mypy sees `score` as the plain method
            results = [scorers[i % actors].score.remote(page) for i, page in enumerate(pages)]  # type: ignore[attr-defined]
            for page, result in zip(pages, results, strict=True):
                scored = await result
                rows += await store.save(page["lead_id"].tolist(), scored["probability"].tolist(), scorer.version)
            say(f"scored {rows}/{todo} leads ({rows / max(1, todo):.0%})")
        return JobReport(rows, time.perf_counter() - started, scorer.version, scorer.synthetic,
                         TABLE_PREFIX + LEADS_TABLE, skipped_already_scored=already)
    finally:
        await pool.close()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m marketing_agents.jobs.batch_score",
        description="Score leads with a registered model as a Ray job (submit it with `ray job submit`). "
                    "Files stream through Ray Data; the leads table is updated page by page and a "
                    "resubmitted job only scores what is left.",
        epilog="examples:\n"
               "  ray job submit --working-dir . -- python -m marketing_agents.jobs.batch_score "
               "--input leads.parquet --output scores/\n"
               "  ray job submit --working-dir . -- python -m marketing_agents.jobs.batch_score "
               "--input table:leads --output table:leads --model v0002-...",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="a CSV/Parquet file or directory, or table:leads")
    p.add_argument("--output", required=True, help="a directory for Parquet output, or table:leads")
    p.add_argument("--model", help="a registered version or a model directory (default: the active version)")
    p.add_argument("--id", dest="id_column", help="the input's id column, copied to the output (files only)")
    p.add_argument("--batch-size", type=int, default=50_000, help="rows per scoring batch (default 50000)")
    p.add_argument("--actors", type=int, default=2,
                   help=f"scoring workers at once: tasks for files, actors of {ACTOR_CPUS} CPU for table:leads "
                        "(default 2)")
    p.add_argument("--object-store-mb", type=int, default=DEFAULT_OBJECT_STORE_MB,
                   help="files only: object store memory the stream may hold at once, in MiB "
                        f"(default {DEFAULT_OBJECT_STORE_MB}); lower it on small nodes, raise it for speed")
    p.add_argument("--limit", type=int, help="table:leads only: score at most this many leads in this run")
    p.add_argument("--report", help="also write the job's figures as JSON to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    table_in, table_out = args.input.startswith(TABLE_PREFIX), args.output.startswith(TABLE_PREFIX)
    if table_in != table_out:
        parser().error("--input and --output must both be files or both be table:leads")
    if table_in and args.input != TABLE_PREFIX + LEADS_TABLE or table_out and args.output != TABLE_PREFIX + LEADS_TABLE:
        parser().error("the only table is table:leads")
    if args.batch_size < 1 or args.actors < 1 or (args.limit is not None and args.limit < 1):
        parser().error("--batch-size, --actors and --limit must be at least 1")
    if args.object_store_mb < 64:
        parser().error("--object-store-mb must be at least 64")
    if args.limit is not None and not table_in:
        parser().error("--limit applies to table:leads only")

    import ray

    ray.init(log_to_driver=True)  # joins the job's cluster (RAY_ADDRESS), or starts a local one

    def say(line: str) -> None:
        print(f"batch_score: {line}", flush=True)

    if table_in:
        report = asyncio.run(score_table(args.model, args.batch_size, args.actors, say, args.limit))
    else:
        report = score_files(args.input, args.output, args.model, args.id_column, args.batch_size, args.actors,
                             args.object_store_mb)
    note = " (SYNTHETIC model: not trained on your leads)" if report.synthetic else ""
    say(f"scored {report.rows} rows with model {report.model_version}{note} in {report.seconds:.1f} s "
        f"({report.rows_per_second:,.0f} rows/s) -> {report.output}")
    if args.report:
        Path(args.report).write_text(json.dumps({**asdict(report), "rows_per_second": report.rows_per_second}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
