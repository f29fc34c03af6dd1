#!/usr/bin/env python3
"""The entity-relationship diagram of the whole platform, generated from the real schema.

Migrates every service (services/*) into a scratch database exactly as production does (each
service's own `provision` and `migrate`), reads the catalog, and writes docs/erd.md: one Mermaid
`erDiagram` with every table, its columns, primary and foreign keys, and the relationships —
solid lines for foreign keys inside a schema, dotted lines for references to another service,
which hold an id only (by design there are no foreign keys across schemas).

    scripts/erd.py            regenerate docs/erd.md
    scripts/erd.py --check    fail if docs/erd.md differs from the schema (CI runs this)

Needs PostgreSQL (scripts/ensure-postgres.sh finds or starts one) and cargo; only the standard
library and the psql client.
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "erd.md"

# Columns that hold another service's ids: (schema, table, column) -> (schema, table). These are
# the cross-service references the design allows (ids only, no foreign key).
CROSS_SERVICE = {
    ("identity", "users", "partner_id"): ("partner", "partners"),
    ("identity", "users", "driver_id"): ("fleet", "drivers"),
    ("fleet", "drivers", "user_id"): ("identity", "users"),
    ("inventory", "material_suppliers", "supplier_id"): ("partner", "partners"),
    ("inventory", "reservations", "shipment_id"): ("shipment", "shipments"),
    ("fleet", "assignments", "shipment_id"): ("shipment", "shipments"),
    ("shipment", "shipments", "customer_id"): ("partner", "partners"),
    ("shipment", "shipments", "supplier_id"): ("partner", "partners"),
    ("shipment", "shipments", "destination_address_id"): ("partner", "addresses"),
    ("shipment", "shipments", "origin_warehouse_id"): ("inventory", "warehouses"),
    ("shipment", "shipments", "truck_id"): ("fleet", "trucks"),
    ("shipment", "shipments", "driver_id"): ("fleet", "drivers"),
    ("shipment", "shipments", "assignment_id"): ("fleet", "assignments"),
    ("shipment", "shipment_items", "material_id"): ("inventory", "materials"),
}

# Tables of the machinery rather than the domain.
SKIPPED = {"_sqlx_migrations"}


def psql(url: str, sql: str) -> list[list[str]]:
    done = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", url, "-c", sql],
                          check=True, capture_output=True, text=True)
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def with_db(url: str, database: str, user: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{netloc.rsplit('@', 1)[-1]}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, ""))


def services() -> list[str]:
    return sorted(p.name for p in (REPO / "services").iterdir() if (p / "Cargo.toml").is_file())


def target_dir() -> Path:
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO,
                          check=True, capture_output=True, text=True).stdout
    import json
    return Path(json.loads(meta)["target_directory"]) / "debug"


def migrate_all(admin: str, database: str) -> None:
    names = services()
    bins = [arg for name in names for arg in ("--bin", name)]
    subprocess.run(["cargo", "build", "--quiet", "--locked", *bins], cwd=REPO, check=True)
    target = target_dir()
    for name in names:
        env = dict(os.environ, ADMIN_DATABASE_URL=with_db(admin, database))
        subprocess.run([str(target / name), "provision"], env=env, check=True, capture_output=True)
        env = dict(os.environ, MIGRATION_DATABASE_URL=with_db(admin, database, f"{name}_owner"))
        subprocess.run([str(target / name), "migrate"], env=env, check=True, capture_output=True)


def diagram(url: str) -> str:
    schemas = services()
    schema_list = ",".join(f"'{s}'" for s in schemas)
    tables = psql(url, f"""
        SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ({schema_list}) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         ORDER BY 1, 2""")
    columns = psql(url, f"""
        SELECT n.nspname, c.relname, a.attname,
               CASE WHEN t.typcategory = 'A' THEN substr(t.typname, 2) || '_array' ELSE t.typname END,
               EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p'
                                                      AND a.attnum = ANY (k.conkey)),
               EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'f'
                                                      AND a.attnum = ANY (k.conkey)),
               a.attnotnull
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
         WHERE n.nspname IN ({schema_list}) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY 1, 2, a.attnum""")
    foreign = psql(url, f"""
        SELECT n.nspname, c.relname, pn.nspname, p.relname,
               coalesce((SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum = ANY (k.conkey) AND a.attname <> 'tenant_id'),
                 'tenant_id'),
               -- 1:1 when the child's primary key lies within the foreign key.
               (SELECT pk.conkey <@ k.conkey FROM pg_constraint pk
                 WHERE pk.conrelid = c.oid AND pk.contype = 'p')
          FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class p ON p.oid = k.confrelid
          JOIN pg_namespace pn ON pn.oid = p.relnamespace
         WHERE k.contype = 'f' AND n.nspname IN ({schema_list})
         ORDER BY 1, 2, 3, 4, 5""")
    # (schema, table) -> partition key columns, e.g. "created_at".
    partitioned = {(s, t): key for s, t, key in psql(url, f"""
        SELECT n.nspname, c.relname,
               regexp_replace(pg_get_partkeydef(c.oid), '^[A-Z]+ \\((.*)\\)$', '\\1')
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ({schema_list}) AND c.relkind = 'p'""")}

    lines = ["erDiagram"]
    for schema, table in tables:
        if table in SKIPPED:
            continue
        lines.append(f"  {schema}_{table} {{")
        for s, t, name, kind, pk, fk, not_null in columns:
            if (s, t) != (schema, table):
                continue
            keys = ", ".join(k for k, on in (("PK", pk == "t"), ("FK", fk == "t")) if on)
            note = "" if not_null == "t" else ' "nullable"'
            lines.append(f"    {kind} {name}{' ' + keys if keys else ''}{note}")
        if (schema, table) in partitioned:
            key = partitioned[(schema, table)]
            lines.append(f'    partitioned by_month "range partitions by {key}"')
        lines.append("  }")
    for schema, table, parent_schema, parent, cols, one_to_one in foreign:
        arrow = "||--o|" if one_to_one == "t" else "||--o{"
        lines.append(f'  {parent_schema}_{parent} {arrow} {schema}_{table} : "{cols}"')
    for (schema, table, column), (ref_schema, ref_table) in sorted(CROSS_SERVICE.items()):
        lines.append(f'  {ref_schema}_{ref_table} |o..o{{ {schema}_{table} : "{column} (id only)"')
    return "\n".join(lines) + "\n"


def document(mermaid: str) -> str:
    return (
        "# Entity-relationship diagram\n\n"
        "Generated by `scripts/erd.py` from the schemas the services' migrations create; CI fails\n"
        "when it drifts from them. Tables are `<schema>_<table>`; every key leads with `tenant_id`.\n"
        "Solid lines are foreign keys inside one service's schema; dotted lines are ids of another\n"
        "service's rows, which by design carry no foreign key. `o|` marks a 1:1 relation (the\n"
        "child's key is its parent's); join tables (`partner_roles`, `user_roles`,\n"
        "`material_suppliers`, `stock_levels`) carry the m:n relations.\n\n"
        "```mermaid\n" + mermaid + "```\n"
    )


def main() -> int:
    check = "--check" in sys.argv[1:]
    admin = subprocess.run([str(REPO / "scripts" / "ensure-postgres.sh")], check=True,
                           capture_output=True, text=True).stdout.strip()
    database = f"erd_{uuid.uuid4().hex[:12]}"
    psql(admin, f"CREATE DATABASE {database}")
    try:
        migrate_all(admin, database)
        text = document(diagram(with_db(admin, database)))
    finally:
        psql(admin, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    if check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            import difflib
            sys.stdout.writelines(difflib.unified_diff(
                current.splitlines(True), text.splitlines(True), str(OUT), "schema"))
            print(f"\n{OUT.relative_to(REPO)} is out of date: run scripts/erd.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
