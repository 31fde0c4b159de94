"""``<kind>/source_data``: the dataset's training part and its holdout, written for the run."""

import hashlib
import json

import dagster as dg
import pandas as pd

from synth_core.io import write_table
from synth_core.ops import SOURCE_ASSET, load_dataset
from synth_core.schema import Schema
from synth_orchestration.common import Stage, catalog, spec_for, user_errors
from synth_orchestration.deploy_tags import step_tags
from synth_orchestration.resources import ArtifactStore, MetricStoreResource


def frame_digest(frame: pd.DataFrame) -> str:
    """Content hash of a table (values, column names and dtypes): the data version of a source."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
    header = json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode()
    return hashlib.sha256(hashed + header).hexdigest()


def read_source(source_data: dict, which: str) -> pd.DataFrame:
    """The run's ``training`` or ``holdout`` part."""
    return pd.read_parquet(source_data[which])


def schema_table(schema: Schema) -> dg.TableMetadataValue:
    """The inferred (or stated) kind of every column, as a table in the asset's metadata."""
    fields = ("column", "kind", "action", "source_dtype", "note")
    records = [dg.TableRecord({k: str(r[k] or "") + (" (stated)" if k == "note" and r["stated"] else "")
                               for k in fields}) for r in schema.records()]
    return dg.MetadataValue.table(records, schema=dg.TableSchema(columns=[dg.TableColumn(k, "string") for k in fields]))


def _materialize(context: dg.AssetExecutionContext, artifacts: ArtifactStore, metrics: MetricStoreResource,
                 kind: str) -> dg.MaterializeResult:
    """Load the partition's dataset, split off the holdout, write both parts.

    The target size counts rows (flat) or groups (sequential); it defaults to training's.
    """
    spec = spec_for(context, kind)
    out = artifacts.run_dir(kind, spec.name, context.run.run_id, SOURCE_ASSET)
    stage = Stage(context, metrics, spec.name)
    with user_errors(cleanup=out):
        tables = load_dataset(spec, catalog().base)
        write_table(tables.training, out / "training.parquet")
        write_table(tables.holdout, out / "holdout.parquet")
        figures = {"training_rows": len(tables.training), "holdout_rows": len(tables.holdout)}
        extra = {}
        if spec.group_key is not None:
            lengths = tables.training.groupby(spec.group_key, sort=False).size()
            figures.update({"training_groups": len(lengths),
                            "holdout_groups": int(tables.holdout[spec.group_key].nunique())})
            extra = {
                "group_key": dg.MetadataValue.text(spec.group_key),
                "context_columns": dg.MetadataValue.json(list(spec.context_columns)),
                "sequence_length_min": dg.MetadataValue.int(int(lengths.min())),
                "sequence_length_median": dg.MetadataValue.float(float(lengths.median())),
                "sequence_length_max": dg.MetadataValue.int(int(lengths.max())),
            }
            natural = len(lengths)
        else:
            natural = len(tables.training)
        target = int(spec.target_size or natural)
        value = {
            "dataset": spec.name,
            "training": str(out / "training.parquet"),
            "holdout": str(out / "holdout.parquet"),
            "target_size": target,
            "group_key": spec.group_key,
            "columns": list(tables.training.columns),
            "source_hashes": tables.source_hashes,
            "training_digest": frame_digest(tables.training),
            "schema": tables.schema.records(),
        }
        figures = stage.record(figures)
    return dg.MaterializeResult(
        value=value,
        metadata={
            **figures,
            "rows": dg.MetadataValue.int(len(tables.training) + len(tables.holdout)),
            "columns": dg.MetadataValue.int(tables.training.shape[1]),
            "holdout_from_file": dg.MetadataValue.bool(tables.holdout_from_file),
            "target_size": dg.MetadataValue.int(target),
            "column_kinds": dg.MetadataValue.json(tables.column_kinds()),
            "schema": schema_table(tables.schema),
            "artifact_dir": dg.MetadataValue.path(str(out)),
            **extra,
        },
    )


def source_data_asset(kind: str, common: dict, description: str) -> dg.AssetsDefinition:
    """The ``source_data`` asset of the ``kind`` graph (``common``: the arguments its assets share)."""
    @dg.asset(name=SOURCE_ASSET, **common, code_version="1", kinds={"pandas", "parquet"},
              op_tags=step_tags(SOURCE_ASSET), description=description)
    def source_data(context: dg.AssetExecutionContext, artifacts: ArtifactStore, metrics: MetricStoreResource):
        return _materialize(context, artifacts, metrics, kind)

    return source_data
