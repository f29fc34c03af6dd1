//! Supplier and customer profiles: 1:1 with a partner holding the role. The database refuses a
//! profile for a partner without the role (foreign key to partner_roles).

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::{PreconditionViolation, Resource};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::partner::PartnerRole;
use crate::domain::profile::TermsChanges;

/// Which profile table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileKind {
    /// `partner.supplier_profiles`.
    Supplier,
    /// `partner.customer_profiles`.
    Customer,
}

impl ProfileKind {
    fn table(self) -> &'static str {
        match self {
            ProfileKind::Supplier => "partner.supplier_profiles",
            ProfileKind::Customer => "partner.customer_profiles",
        }
    }

    /// The partner role the profile belongs to.
    pub fn role(self) -> PartnerRole {
        match self {
            ProfileKind::Supplier => PartnerRole::Supplier,
            ProfileKind::Customer => PartnerRole::Customer,
        }
    }

    /// Resource kind in error details.
    pub fn resource_kind(self) -> &'static str {
        match self {
            ProfileKind::Supplier => "logistics.partner.v1.SupplierProfile",
            ProfileKind::Customer => "logistics.partner.v1.CustomerProfile",
        }
    }

    fn lead_time_column(self) -> &'static str {
        match self {
            ProfileKind::Supplier => "lead_time_days",
            ProfileKind::Customer => "0",
        }
    }
}

/// A profile as read back (customer profiles read `lead_time_days` as 0).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProfileRow {
    /// The partner.
    pub partner_id: Uuid,
    /// Payment terms.
    pub payment_terms_days: i32,
    /// Lead time (suppliers).
    pub lead_time_days: i32,
    /// Credit limit amount.
    pub credit_limit_minor: Option<i64>,
    /// Credit limit currency.
    pub credit_currency_code: Option<String>,
    /// Rating 1-5.
    pub rating: Option<i16>,
    /// Notes.
    pub notes: String,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
}

fn select(kind: ProfileKind) -> String {
    format!(
        "SELECT partner_id, payment_terms_days, {} AS lead_time_days, credit_limit_minor, \
         credit_currency_code, rating, notes, created_at, updated_at, version FROM {}",
        kind.lead_time_column(),
        kind.table()
    )
}

/// The profile of a partner, if any.
pub async fn get(
    tx: &mut Tx,
    kind: ProfileKind,
    partner_id: Uuid,
) -> Result<Option<ProfileRow>, Error> {
    let sql = format!("{} WHERE partner_id = $1", select(kind));
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(partner_id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Creates a profile with defaults unless one exists (a concurrent first write may have just
/// created it). FAILED_PRECONDITION when the partner lacks the role.
pub async fn create(tx: &mut Tx, kind: ProfileKind, partner_id: Uuid) -> Result<(), Error> {
    let sql = format!(
        "INSERT INTO {} (tenant_id, partner_id) VALUES (partner.current_tenant_id(), $1) \
         ON CONFLICT (tenant_id, partner_id) DO NOTHING",
        kind.table()
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(partner_id)
        .execute(&mut **tx)
        .await
        .map_err(
            |e| match e.as_database_error().and_then(|d| d.code()).as_deref() {
                Some("23503") => Error::Precondition(vec![PreconditionViolation {
                    kind: "ROLE_REQUIRED",
                    subject: "partner".to_owned(),
                    description: format!(
                        "the partner does not hold the {} role",
                        kind.role().as_str()
                    ),
                }]),
                _ => Error::from_db(e),
            },
        )?;
    Ok(())
}

/// Applies `changes` at `expected_version` (any when `None`).
pub async fn update(
    tx: &mut Tx,
    kind: ProfileKind,
    partner_id: Uuid,
    expected_version: Option<i32>,
    changes: &TermsChanges,
) -> Result<ProfileRow, Error> {
    let lead_time = match kind {
        ProfileKind::Supplier => "lead_time_days = coalesce($4, lead_time_days),",
        ProfileKind::Customer => "",
    };
    let sql = format!(
        "UPDATE {} SET payment_terms_days = coalesce($3, payment_terms_days), {lead_time} \
             credit_limit_minor = CASE WHEN $5 THEN $6 ELSE credit_limit_minor END, \
             credit_currency_code = CASE WHEN $5 THEN $7 ELSE credit_currency_code END, \
             rating = CASE WHEN $8 THEN $9 ELSE rating END, \
             notes = coalesce($10, notes), \
             version = version + 1 \
         WHERE partner_id = $1 AND ($2::int IS NULL OR version = $2) RETURNING partner_id",
        kind.table()
    );
    let credit = changes.credit_limit.as_ref();
    let updated: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(partner_id)
        .bind(expected_version)
        .bind(changes.payment_terms_days)
        .bind(changes.lead_time_days)
        .bind(credit.is_some())
        .bind(credit.and_then(|c| c.as_ref()).map(|m| m.amount_minor))
        .bind(credit.and_then(|c| c.as_ref()).map(|m| m.currency.as_str()))
        .bind(changes.rating.is_some())
        .bind(changes.rating.flatten())
        .bind(changes.notes.as_ref().map(|n| n.as_str()))
        .fetch_optional(&mut **tx)
        .await?;
    let exists = get(tx, kind, partner_id).await?;
    match (updated, exists) {
        (Some(_), Some(row)) => Ok(row),
        (_, exists) => Err(Error::missing_or_stale(
            exists.is_some(),
            Resource::new(kind.resource_kind(), partner_id),
        )),
    }
}

/// Deletes a profile at `expected_version`; NOT_FOUND or ABORTED otherwise.
pub async fn delete(
    tx: &mut Tx,
    kind: ProfileKind,
    partner_id: Uuid,
    expected_version: Option<i32>,
) -> Result<(), Error> {
    let sql = format!(
        "DELETE FROM {} WHERE partner_id = $1 AND ($2::int IS NULL OR version = $2)",
        kind.table()
    );
    let deleted = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(partner_id)
        .bind(expected_version)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if deleted == 1 {
        return Ok(());
    }
    let exists = get(tx, kind, partner_id).await?.is_some();
    Err(Error::missing_or_stale(
        exists,
        Resource::new(kind.resource_kind(), partner_id),
    ))
}
