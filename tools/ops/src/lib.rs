//! The operations tool of the logistics platform, as a library so its tests drive the same code
//! as the `ops` binary: backups and point-in-time restores with pgBackRest, a logical export and
//! import of one service's schema, maintenance (partitions, retention, purges, statistics,
//! bloat), a status report, the slow-query report and the entity-relationship diagram.
//!
//! Every command talks to PostgreSQL as a superuser (`ADMIN_DATABASE_URL`): it is an operator's
//! tool, never on a service's request path.

pub mod backup;
pub mod cluster;
pub mod erd;
pub mod logical;
pub mod maintain;
pub mod services;
pub mod slow_queries;
pub mod status;
