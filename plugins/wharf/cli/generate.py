"""``wharf schema generate``: draft a dataset YAML from a sample file or a source table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wharf import environment, settings


def cmd_schema_generate(args: argparse.Namespace) -> int:
    from wharf.cli import schema_generate as generate

    if (args.sample is None) == (args.conn_id is None):
        print("give a sample file, or --conn-id with --table", file=sys.stderr)
        return 2
    if args.sample is not None:
        sample = generate.sample_file(Path(args.sample), args.rows, args.delimiter)
    else:
        if not args.table:
            print("--conn-id needs --table", file=sys.stderr)
            return 2
        environment.apply(start_database=False)
        sample = generate.sample_table(args.conn_id, args.table, args.rows)
    for warning in sample.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    columns = generate.infer(sample.table)
    text = generate.draft_yaml(args.domain, args.dataset, columns, sample)
    if not args.write:
        print(text, end="")
        return 0
    target = settings.schemas_dir() / args.domain / f"{args.dataset}.yaml"
    if target.exists():
        print(f"{target} exists; not overwritten", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {target}; fill in the TODOs, then run `wharf check`", file=sys.stderr)
    return 0
