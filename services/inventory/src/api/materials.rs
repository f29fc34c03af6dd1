//! Materials: create (idempotent), get, list, update (mask + etag), soft delete, undelete.

use logistics_platform::aip::{self, id_and_etag, require_id, resource_id_and_etag};
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, Resource, Violations, parsed};
use logistics_platform::fields::Text;
use logistics_proto::inventory::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{State, convert};
use crate::domain::material::{
    self as domain, MaterialFields, MaterialStatus, REORDER_POINT, Sku, UNIT_VOLUME, UNIT_WEIGHT,
};
use crate::store::materials::{self as store, Condition, ListQuery, Order};
use crate::store::{IDEMPOTENCY, stock};

const CREATE_MATERIAL: &str = "CreateMaterial";
const UPDATABLE: &[&str] = &[
    "sku",
    "name",
    "description",
    "unit",
    "unit_weight_kg",
    "unit_volume_m3",
    "hazard_class",
    "reorder_point",
    "status",
];

/// Every field of `m`, validated; violations recorded in `v` under `material.`. Unset weight,
/// volume and reorder point are 0; an unset status is active when `status_defaults` (create).
fn parse_material(
    v: &mut Violations,
    m: &pb::Material,
    status_defaults: bool,
) -> Option<MaterialFields> {
    let sku = v.check(Sku::parse("material.sku", &m.sku));
    let name = v.check(Text::parse("material.name", &m.name, 1, 200));
    let description = v.check(Text::parse("material.description", &m.description, 0, 2000));
    let unit = v.check(convert::unit("material.unit", m.unit));
    let zero_if_unset = |d: &Option<logistics_proto::r#type::v1::Decimal>| match d {
        Some(d) if !d.value.trim().is_empty() => d.value.clone(),
        _ => "0".to_owned(),
    };
    let unit_weight_kg =
        v.check(UNIT_WEIGHT.parse("material.unit_weight_kg", &zero_if_unset(&m.unit_weight_kg)));
    let unit_volume_m3 =
        v.check(UNIT_VOLUME.parse("material.unit_volume_m3", &zero_if_unset(&m.unit_volume_m3)));
    let hazard_class = v.check(domain::hazard_class(
        "material.hazard_class",
        &m.hazard_class,
    ));
    let reorder_point =
        v.check(REORDER_POINT.parse("material.reorder_point", &zero_if_unset(&m.reorder_point)));
    let status = if m.status == 0 && status_defaults {
        Some(MaterialStatus::Active)
    } else {
        v.check(convert::material_status("material.status", m.status))
    };
    Some(MaterialFields {
        sku: sku?,
        name: name?,
        description: description?,
        unit: unit?,
        unit_weight_kg: unit_weight_kg?,
        unit_volume_m3: unit_volume_m3?,
        hazard_class: hazard_class?,
        reorder_point: reorder_point?,
        status: status?,
    })
}

/// Copies the fields named in `paths` from `from` into `into`.
fn overlay(into: &mut pb::Material, from: &pb::Material, paths: &[&str]) {
    for path in paths {
        match *path {
            "sku" => into.sku.clone_from(&from.sku),
            "name" => into.name.clone_from(&from.name),
            "description" => into.description.clone_from(&from.description),
            "unit" => into.unit = from.unit,
            "unit_weight_kg" => into.unit_weight_kg.clone_from(&from.unit_weight_kg),
            "unit_volume_m3" => into.unit_volume_m3.clone_from(&from.unit_volume_m3),
            "hazard_class" => into.hazard_class.clone_from(&from.hazard_class),
            "reorder_point" => into.reorder_point.clone_from(&from.reorder_point),
            "status" => into.status = from.status,
            _ => {}
        }
    }
}

/// Adds a material; the same `request_id` again answers with the first result.
#[tracing::instrument(skip_all)]
pub async fn create_material(
    state: &State,
    caller: &Caller,
    request: pb::CreateMaterialRequest,
) -> Result<pb::CreateMaterialResponse, Error> {
    caller.require(Permission::InventoryWrite)?;
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let fields = parse_material(
        &mut v,
        request
            .material
            .as_ref()
            .unwrap_or(&pb::Material::default()),
        true,
    );
    v.finish()?;
    let fields = parsed(fields)?;
    let fingerprint = aip::request_fingerprint(&request.encode_to_vec());

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .replay(&mut tx, CREATE_MATERIAL, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    let row = store::insert(&mut tx, Uuid::now_v7(), &fields)
        .await
        .map_err(|e| e.nested("material"))?;
    let response = pb::CreateMaterialResponse {
        material: Some(convert::material(&row)?),
    };
    IDEMPOTENCY
        .record(&mut tx, CREATE_MATERIAL, request_id, &response)
        .await?;
    tx.commit().await?;
    Ok(response)
}

/// One material, deleted or not.
pub async fn get_material(
    state: &State,
    caller: &Caller,
    request: pb::GetMaterialRequest,
) -> Result<pb::GetMaterialResponse, Error> {
    caller.require(Permission::InventoryRead)?;
    let id = require_id("id", &request.id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::get(&mut tx, id, true).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    Ok(pb::GetMaterialResponse {
        material: Some(convert::material(&row)?),
    })
}

fn list_conditions(filter: &str) -> Result<Vec<Condition>, Error> {
    let mut conditions = Vec::new();
    for c in aip::parse_filter(filter)? {
        let condition = match c.field.as_str() {
            "status" => pb::MaterialStatus::from_str_name(&c.value)
                .and_then(|s| convert::material_status("filter", s as i32).ok())
                .map(|s| Condition::Status(s, c.negated)),
            "sku" => {
                let upper = c.value.to_ascii_uppercase();
                Some(match upper.strip_suffix('*') {
                    Some(prefix) => Condition::SkuPrefix(prefix.to_owned(), c.negated),
                    None => Condition::SkuIs(upper.clone(), c.negated),
                })
            }
            "hazardous" => match c.value.as_str() {
                "true" => Some(Condition::Hazardous(!c.negated)),
                "false" => Some(Condition::Hazardous(c.negated)),
                _ => None,
            },
            _ => None,
        };
        conditions.push(condition.ok_or_else(|| {
            Error::invalid(
                "filter",
                "supported: `status = MATERIAL_STATUS_...`, `sku = \"STEEL-*\"`, `hazardous = true`",
            )
        })?);
    }
    Ok(conditions)
}

/// One keyset page of materials.
pub async fn list_materials(
    state: &State,
    caller: &Caller,
    request: pb::ListMaterialsRequest,
) -> Result<pb::ListMaterialsResponse, Error> {
    caller.require(Permission::InventoryRead)?;
    let page_size = aip::page_size(request.page_size).map_err(|v| Error::Invalid(vec![v]))?;
    let conditions = list_conditions(&request.filter)?;
    let (field, descending) =
        aip::parse_order_by(&request.order_by, &["sku", "name", "create_time"], "sku")?;
    let order = match field {
        "name" => Order::Name,
        "create_time" => Order::CreateTime,
        _ => Order::Sku,
    };
    let listing = format!(
        "materials|{}|{}|{}",
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
    Ok(pb::ListMaterialsResponse {
        materials: rows
            .iter()
            .map(convert::material)
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Changes the masked fields of a live material if the etag is current.
#[tracing::instrument(skip_all)]
pub async fn update_material(
    state: &State,
    caller: &Caller,
    request: pb::UpdateMaterialRequest,
) -> Result<pb::UpdateMaterialResponse, Error> {
    caller.require(Permission::InventoryWrite)?;
    let paths = aip::field_mask(request.update_mask.as_ref(), UPDATABLE)?;
    let given = request.material.unwrap_or_default();
    let mut v = Violations::new();
    let (id, version) = resource_id_and_etag(&mut v, "material", &given.id, &given.etag);
    v.finish()?;
    let id = parsed(id)?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = store::get_live(&mut tx, id).await?;
    let mut merged = convert::material(&current)?;
    overlay(&mut merged, &given, &paths);
    let mut v = Violations::new();
    let fields = parse_material(&mut v, &merged, false);
    v.finish()?;
    let row = store::update(&mut tx, id, version, &parsed(fields)?)
        .await
        .map_err(|e| e.nested("material"))?;
    tx.commit().await?;
    Ok(pb::UpdateMaterialResponse {
        material: Some(convert::material(&row)?),
    })
}

/// Soft-deletes a material that no warehouse holds any more.
#[tracing::instrument(skip_all)]
pub async fn delete_material(
    state: &State,
    caller: &Caller,
    request: pb::DeleteMaterialRequest,
) -> Result<pb::DeleteMaterialResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, true).await?;
    Ok(pb::DeleteMaterialResponse {
        material: Some(convert::material(&row)?),
    })
}

/// Restores a soft-deleted material.
#[tracing::instrument(skip_all)]
pub async fn undelete_material(
    state: &State,
    caller: &Caller,
    request: pb::UndeleteMaterialRequest,
) -> Result<pb::UndeleteMaterialResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, false).await?;
    Ok(pb::UndeleteMaterialResponse {
        material: Some(convert::material(&row)?),
    })
}

async fn set_deleted(
    state: &State,
    caller: &Caller,
    id: &str,
    etag: &str,
    deleted: bool,
) -> Result<store::MaterialRow, Error> {
    caller.require(Permission::InventoryWrite)?;
    let (id, version) = id_and_etag(id, etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if deleted {
        store::lock(&mut tx, id).await?;
    }
    if deleted && stock::holds(&mut tx, None, Some(id)).await? {
        return Err(Error::precondition(
            "STOCK_REMAINS",
            "material",
            "a warehouse still holds this material; issue or transfer it first",
        ));
    }
    let row = store::set_deleted(&mut tx, id, version, deleted)
        .await
        .map_err(|e| e.nested("material"))?;
    tx.commit().await?;
    Ok(row)
}
