//! Drivers: create (idempotent), get, list, update (mask + etag), soft delete, undelete, and the
//! search for drivers licensed and free for a window. Licence numbers and phones are sealed
//! before the store sees them and opened only into responses.

use logistics_platform::aip::{self, id_and_etag, require_id, resource_id_and_etag};
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, FieldViolation, Resource, Violations, parsed};
use logistics_platform::fields::{PhoneE164, Text};
use logistics_platform::wire::parse_timestamp;
use logistics_proto::fleet::v1 as pb;
use prost::Message;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{State, convert};
use crate::domain::driver::{DriverStatus, LicenceClass, LicenceNumber};
use crate::sealing::{Column, licence_index};
use crate::store::IDEMPOTENCY;
use crate::store::drivers::{self as store, Condition, DriverValues, ListQuery, Order};

const CREATE_DRIVER: &str = "CreateDriver";
const UPDATABLE: &[&str] = &[
    "name",
    "licence_number",
    "licence_classes",
    "licence_expire_time",
    "phone",
    "user_id",
    "status",
];

/// A driver's fields, validated; personal data not yet sealed.
struct DriverFields {
    name: Text,
    licence_number: LicenceNumber,
    classes: Vec<LicenceClass>,
    licence_expires_at: OffsetDateTime,
    phone: Option<PhoneE164>,
    user_id: Option<Uuid>,
    status: DriverStatus,
}

/// Every field of `d`, validated; violations recorded in `v` under `driver.`. An unset status
/// is active when `status_defaults` (create), a violation otherwise.
fn parse_driver(v: &mut Violations, d: &pb::Driver, status_defaults: bool) -> Option<DriverFields> {
    let name = v.check(Text::parse("driver.name", &d.name, 1, 200));
    let licence_number = v.check(LicenceNumber::parse(
        "driver.licence_number",
        &d.licence_number,
    ));
    let mut classes = Vec::new();
    if d.licence_classes.is_empty() {
        v.push(FieldViolation::new(
            "driver.licence_classes",
            "needs at least one class",
        ));
    }
    for (i, value) in d.licence_classes.iter().enumerate() {
        let field = format!("driver.licence_classes[{i}]");
        if let Some(class) = v.check(convert::licence_class(&field, *value)) {
            if classes.contains(&class) {
                v.push(FieldViolation::new(field, "is listed twice"));
            } else {
                classes.push(class);
            }
        }
    }
    let licence_expires_at = v.check(parse_timestamp(
        "driver.licence_expire_time",
        d.licence_expire_time.as_ref(),
    ));
    let phone = if d.phone.trim().is_empty() {
        Some(None)
    } else {
        v.check(PhoneE164::parse("driver.phone", &d.phone))
            .map(Some)
    };
    let user_id = v.check(aip::parse_optional_id("driver.user_id", &d.user_id));
    let status = if d.status == 0 && status_defaults {
        Some(DriverStatus::Active)
    } else {
        v.check(convert::driver_status("driver.status", d.status))
    };
    Some(DriverFields {
        name: name?,
        licence_number: licence_number?,
        classes,
        licence_expires_at: licence_expires_at?,
        phone: phone?,
        user_id: user_id?,
        status: status?,
    })
}

/// The stored values of `fields` for driver `id`: licence number and phone sealed to the row.
fn seal(state: &State, tenant_id: Uuid, id: Uuid, fields: DriverFields) -> DriverValues {
    DriverValues {
        name: fields.name.into_string(),
        licence_ciphertext: state.sealer.seal(
            Column::DriverLicenceNumber,
            tenant_id,
            id,
            fields.licence_number.as_str(),
        ),
        licence_index: licence_index(&state.sealer, fields.licence_number.as_str()),
        classes: fields.classes,
        licence_expires_at: fields.licence_expires_at,
        phone_ciphertext: fields.phone.map(|p| {
            state
                .sealer
                .seal(Column::DriverPhone, tenant_id, id, p.as_str())
        }),
        user_id: fields.user_id,
        status: fields.status,
    }
}

/// Copies the fields named in `paths` from `from` into `into`.
fn overlay(into: &mut pb::Driver, from: &pb::Driver, paths: &[&str]) {
    for path in paths {
        match *path {
            "name" => into.name.clone_from(&from.name),
            "licence_number" => into.licence_number.clone_from(&from.licence_number),
            "licence_classes" => into.licence_classes.clone_from(&from.licence_classes),
            "licence_expire_time" => into.licence_expire_time = from.licence_expire_time,
            "phone" => into.phone.clone_from(&from.phone),
            "user_id" => into.user_id.clone_from(&from.user_id),
            "status" => into.status = from.status,
            _ => {}
        }
    }
}

/// Adds a driver; the same `request_id` again answers with the first result.
#[tracing::instrument(skip_all)]
pub async fn create_driver(
    state: &State,
    caller: &Caller,
    request: pb::CreateDriverRequest,
) -> Result<pb::CreateDriverResponse, Error> {
    caller.require(Permission::FleetWrite)?;
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let fields = parse_driver(
        &mut v,
        request.driver.as_ref().unwrap_or(&pb::Driver::default()),
        true,
    );
    v.finish()?;
    let fields = parsed(fields)?;
    // Keyed, so the licence number and phone count without a guessable hash of them stored.
    let fingerprint = state
        .sealer
        .request_fingerprint(CREATE_DRIVER, &request.encode_to_vec());

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .replay_sealed(
            &mut tx,
            &state.sealer,
            caller.tenant_id,
            CREATE_DRIVER,
            request_id,
            &fingerprint,
        )
        .await?
    {
        return Ok(first);
    }
    let id = Uuid::now_v7();
    let values = seal(state, caller.tenant_id, id, fields);
    let row = store::insert(&mut tx, id, &values)
        .await
        .map_err(|e| e.nested("driver"))?;
    let response = pb::CreateDriverResponse {
        driver: Some(convert::driver(&state.sealer, &row)?),
    };
    IDEMPOTENCY
        .record_sealed(
            &mut tx,
            &state.sealer,
            caller.tenant_id,
            CREATE_DRIVER,
            request_id,
            &response,
        )
        .await?;
    tx.commit().await?;
    tracing::info!(driver_id = %id, "driver created");
    Ok(response)
}

/// One driver, deleted or not. A driver user sees only its own record.
pub async fn get_driver(
    state: &State,
    caller: &Caller,
    request: pb::GetDriverRequest,
) -> Result<pb::GetDriverResponse, Error> {
    caller.require(Permission::FleetRead)?;
    let id = require_id("id", &request.id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::get(&mut tx, id, true).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    Ok(pb::GetDriverResponse {
        driver: Some(convert::driver(&state.sealer, &row)?),
    })
}

fn list_conditions(filter: &str) -> Result<Vec<Condition>, Error> {
    let mut conditions = Vec::new();
    for c in aip::parse_filter(filter)? {
        let condition = match c.field.as_str() {
            "status" => pb::DriverStatus::from_str_name(&c.value)
                .and_then(|s| convert::driver_status("filter", s as i32).ok())
                .map(|s| Condition::Status(s, c.negated)),
            "licence_class" => pb::LicenceClass::from_str_name(&c.value)
                .and_then(|k| convert::licence_class("filter", k as i32).ok())
                .map(|k| Condition::Class(k, c.negated)),
            "name" => Some(match c.value.strip_suffix('*') {
                Some(prefix) => Condition::NamePrefix(prefix.to_owned(), c.negated),
                None => Condition::NameIs(c.value.clone(), c.negated),
            }),
            _ => None,
        };
        conditions.push(condition.ok_or_else(|| {
            Error::invalid(
                "filter",
                "supported: `status = DRIVER_STATUS_...`, `licence_class = LICENCE_CLASS_...`, \
                 `name = \"Ann*\"`",
            )
        })?);
    }
    Ok(conditions)
}

/// One keyset page of drivers.
pub async fn list_drivers(
    state: &State,
    caller: &Caller,
    request: pb::ListDriversRequest,
) -> Result<pb::ListDriversResponse, Error> {
    caller.require(Permission::FleetRead)?;
    let page_size = aip::page_size(request.page_size).map_err(|v| Error::Invalid(vec![v]))?;
    let conditions = list_conditions(&request.filter)?;
    let (field, descending) =
        aip::parse_order_by(&request.order_by, &["name", "create_time"], "name")?;
    let order = if field == "name" {
        Order::Name
    } else {
        Order::CreateTime
    };
    let listing = format!(
        "drivers|{}|{}|{}",
        request.filter, request.order_by, request.show_deleted
    );
    let after = state.page_tokens.decode(&listing, &request.page_token)?;
    let query = ListQuery {
        conditions,
        order,
        descending,
        show_deleted: request.show_deleted,
        after,
        limit: page_size + 1,
    };
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let rows = store::list(&mut tx, &query).await?;
    tx.commit().await?;
    let (rows, next_page_token) = state
        .page_tokens
        .page(&listing, rows, page_size, |r| store::cursor_after(r, order));
    Ok(pb::ListDriversResponse {
        drivers: rows
            .iter()
            .map(|r| convert::driver(&state.sealer, r))
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Changes the masked fields of a live driver if the etag is current. Licence number and phone
/// are sealed afresh with the active key.
#[tracing::instrument(skip_all)]
pub async fn update_driver(
    state: &State,
    caller: &Caller,
    request: pb::UpdateDriverRequest,
) -> Result<pb::UpdateDriverResponse, Error> {
    caller.require(Permission::FleetWrite)?;
    let paths = aip::field_mask(request.update_mask.as_ref(), UPDATABLE)?;
    let given = request.driver.unwrap_or_default();
    let mut v = Violations::new();
    let (id, version) = resource_id_and_etag(&mut v, "driver", &given.id, &given.etag);
    v.finish()?;
    let id = parsed(id)?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = store::get_live(&mut tx, id).await?;
    let mut merged = convert::driver(&state.sealer, &current)?;
    overlay(&mut merged, &given, &paths);
    let mut v = Violations::new();
    let fields = parse_driver(&mut v, &merged, false);
    v.finish()?;
    let values = seal(state, caller.tenant_id, id, parsed(fields)?);
    let row = store::update(&mut tx, id, version, &values)
        .await
        .map_err(|e| e.nested("driver"))?;
    tx.commit().await?;
    Ok(pb::UpdateDriverResponse {
        driver: Some(convert::driver(&state.sealer, &row)?),
    })
}

/// Soft-deletes a driver.
#[tracing::instrument(skip_all)]
pub async fn delete_driver(
    state: &State,
    caller: &Caller,
    request: pb::DeleteDriverRequest,
) -> Result<pb::DeleteDriverResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, true).await?;
    Ok(pb::DeleteDriverResponse {
        driver: Some(convert::driver(&state.sealer, &row)?),
    })
}

/// Restores a soft-deleted driver.
#[tracing::instrument(skip_all)]
pub async fn undelete_driver(
    state: &State,
    caller: &Caller,
    request: pb::UndeleteDriverRequest,
) -> Result<pb::UndeleteDriverResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, false).await?;
    Ok(pb::UndeleteDriverResponse {
        driver: Some(convert::driver(&state.sealer, &row)?),
    })
}

async fn set_deleted(
    state: &State,
    caller: &Caller,
    id: &str,
    etag: &str,
    deleted: bool,
) -> Result<store::DriverRow, Error> {
    caller.require(Permission::FleetWrite)?;
    let (id, version) = id_and_etag(id, etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::set_deleted(&mut tx, id, version, deleted).await?;
    tx.commit().await?;
    Ok(row)
}

/// Active drivers licensed (for a class, if given) to the end of a window and free for it.
pub async fn find_available_drivers(
    state: &State,
    caller: &Caller,
    request: pb::FindAvailableDriversRequest,
) -> Result<pb::FindAvailableDriversResponse, Error> {
    caller.require(Permission::FleetRead)?;
    let mut v = Violations::new();
    let window = convert::parse_window(&mut v, "window", request.window.as_ref());
    let class =
        convert::parse_optional_licence_class(&mut v, "licence_class", request.licence_class);
    let page_size = v.check(aip::page_size(request.page_size));
    v.finish()?;
    let (window, page_size) = (parsed(window)?, parsed(page_size)?);
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let rows = store::available(&mut tx, &window, class, page_size).await?;
    tx.commit().await?;
    Ok(pb::FindAvailableDriversResponse {
        drivers: rows
            .iter()
            .map(|r| convert::driver(&state.sealer, r))
            .collect::<Result<_, _>>()?,
    })
}
