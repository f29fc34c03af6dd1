//! The platform's five services as the ops tool sees them: each one's schema and roles, its
//! embedded migrations and, where it has one, the monthly partitioned table it keeps ahead.
//! The services' own crates are the only source of these, so the tool cannot drift from them.

use logistics_platform::db::SchemaSpec;
use sqlx::migrate::Migrator;

/// One service of the platform.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// Its name, which is also its binary's and its schema's.
    pub name: &'static str,
    /// Its schema and roles.
    pub schema: &'static SchemaSpec,
    /// Its migrations.
    pub migrator: &'static Migrator,
    /// Its monthly partitioned table, if any.
    pub partitions: Option<Partitions>,
}

/// A table partitioned by month and the owner's function that creates its partitions.
#[derive(Debug, Clone, Copy)]
pub struct Partitions {
    /// The partitioned table, schema-qualified.
    pub table: &'static str,
    /// The function that creates the partitions from this month to `months_ahead` ahead.
    pub function: &'static str,
    /// How many months ahead the service keeps.
    pub months_ahead: i32,
}

/// Every service, in start order (identity first: the others verify tokens against it).
pub const ALL: [Service; 5] = [
    Service {
        name: "identity",
        schema: &identity::app::SCHEMA,
        migrator: &identity::app::MIGRATOR,
        partitions: None,
    },
    Service {
        name: "partner",
        schema: &partner::app::SCHEMA,
        migrator: &partner::app::MIGRATOR,
        partitions: None,
    },
    Service {
        name: "fleet",
        schema: &fleet::schema::SCHEMA,
        migrator: &fleet::schema::MIGRATOR,
        partitions: None,
    },
    Service {
        name: "inventory",
        schema: &inventory::schema::SCHEMA,
        migrator: &inventory::schema::MIGRATOR,
        partitions: Some(Partitions {
            table: "inventory.stock_movements",
            function: inventory::schema::PARTITION_FUNCTION,
            months_ahead: inventory::schema::PARTITION_MONTHS_AHEAD,
        }),
    },
    Service {
        name: "shipment",
        schema: &shipment::schema::SCHEMA,
        migrator: &shipment::schema::MIGRATOR,
        partitions: Some(Partitions {
            table: "shipment.tracking_events",
            function: shipment::schema::PARTITION_FUNCTION,
            months_ahead: shipment::schema::PARTITION_MONTHS_AHEAD,
        }),
    },
];

/// The service called `name`, or an error listing the known ones.
pub fn named(name: &str) -> anyhow::Result<&'static Service> {
    ALL.iter().find(|s| s.name == name).ok_or_else(|| {
        let known: Vec<&str> = ALL.iter().map(|s| s.name).collect();
        anyhow::anyhow!("no service {name:?}; the services are {}", known.join(", "))
    })
}

/// Provisions and migrates every service into the database `admin_url` points at, as
/// production does: each schema with its own owner and runtime role (no passwords: trust or
/// peer authentication, as on the local and CI clusters), then each one's migrations as its
/// owner. `owner_url` gives the URL of the same database as a role.
pub async fn migrate_all(
    admin_url: &str,
    owner_url: impl Fn(&str) -> String,
) -> anyhow::Result<()> {
    use logistics_platform::db::{self, RolePasswords};
    for service in &ALL {
        db::provision(admin_url, service.schema, &RolePasswords::default()).await?;
        db::migrate(
            &owner_url(service.schema.owner_role),
            service.schema.schema,
            service.migrator,
        )
        .await?;
    }
    Ok(())
}
