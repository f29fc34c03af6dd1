//! Fleet's schema, roles and embedded migrations.

use logistics_platform::db::SchemaSpec;

/// Fleet's schema and roles; `btree_gist` backs the exclusion constraints on assignments.
pub const SCHEMA: SchemaSpec =
    SchemaSpec::for_service("fleet", "fleet_owner", "fleet_app").with_extensions(&["btree_gist"]);

/// Fleet's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
