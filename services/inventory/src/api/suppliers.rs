//! Material-supplier links: which supplier (a partner id) sells which material, on what terms.
//! At most one live preferred supplier per material: promoting one demotes the other in the same
//! transaction. A supplier user sees only its own links (row-level security).

use logistics_platform::aip::{self, id_and_etag, require_id, resource_id_and_etag};
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, FieldViolation, Resource, Violations, parsed};
use logistics_platform::fields::{Money, Text};
use logistics_proto::inventory::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{State, convert};
use crate::store::suppliers::{self as store, LinkValues, ListFilter};
use crate::store::{IDEMPOTENCY, materials};

const CREATE_LINK: &str = "CreateMaterialSupplier";
const UPDATABLE: &[&str] = &["supplier_sku", "lead_time_days", "unit_price", "preferred"];

/// The changeable values of `l`, validated; violations recorded in `v` under
/// `material_supplier.`.
fn parse_values(v: &mut Violations, l: &pb::MaterialSupplier) -> Option<LinkValues> {
    let supplier_sku = v.check(Text::parse(
        "material_supplier.supplier_sku",
        &l.supplier_sku,
        0,
        64,
    ));
    let lead_time_days = if (0..=365).contains(&l.lead_time_days) {
        Some(l.lead_time_days)
    } else {
        v.push(FieldViolation::new(
            "material_supplier.lead_time_days",
            "must be 0 to 365",
        ));
        None
    };
    let price = match &l.unit_price {
        None => {
            v.push(FieldViolation::new(
                "material_supplier.unit_price",
                "is required",
            ));
            None
        }
        Some(m) => v.check(Money::parse_non_negative(
            "material_supplier.unit_price",
            &m.currency_code,
            m.amount_minor,
        )),
    };
    let (supplier_sku, lead_time_days, price) = (supplier_sku?, lead_time_days?, price?);
    Some(LinkValues {
        supplier_sku: supplier_sku.into_string(),
        lead_time_days,
        unit_price_minor: price.amount_minor,
        currency_code: price.currency.as_str().to_owned(),
        preferred: l.preferred,
    })
}

/// Links a supplier to a live material; the same `request_id` again answers with the first.
#[tracing::instrument(skip_all)]
pub async fn create_material_supplier(
    state: &State,
    caller: &Caller,
    request: pb::CreateMaterialSupplierRequest,
) -> Result<pb::CreateMaterialSupplierResponse, Error> {
    caller.require(Permission::InventoryWrite)?;
    let given = request.material_supplier.clone().unwrap_or_default();
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let material_id = v.check(aip::parse_id(
        "material_supplier.material_id",
        &given.material_id,
    ));
    let supplier_id = v.check(aip::parse_id(
        "material_supplier.supplier_id",
        &given.supplier_id,
    ));
    let values = parse_values(&mut v, &given);
    v.finish()?;
    let (material_id, supplier_id, values) =
        (parsed(material_id)?, parsed(supplier_id)?, parsed(values)?);
    let fingerprint = aip::request_fingerprint(&request.encode_to_vec());

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .replay(&mut tx, CREATE_LINK, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    materials::get_live(&mut tx, material_id).await?;
    let id = Uuid::now_v7();
    if values.preferred {
        store::demote_preferred(&mut tx, material_id, id).await?;
    }
    let row = store::insert(&mut tx, id, material_id, supplier_id, &values)
        .await
        .map_err(|e| e.nested("material_supplier"))?;
    let response = pb::CreateMaterialSupplierResponse {
        material_supplier: Some(convert::link(&row)),
    };
    IDEMPOTENCY
        .record(&mut tx, CREATE_LINK, request_id, &response)
        .await?;
    tx.commit().await?;
    Ok(response)
}

/// One link, deleted or not.
pub async fn get_material_supplier(
    state: &State,
    caller: &Caller,
    request: pb::GetMaterialSupplierRequest,
) -> Result<pb::GetMaterialSupplierResponse, Error> {
    caller.require(Permission::MaterialSuppliersRead)?;
    let id = require_id("id", &request.id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::get(&mut tx, id, true).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    Ok(pb::GetMaterialSupplierResponse {
        material_supplier: Some(convert::link(&row)),
    })
}

/// One keyset page of links by creation time.
pub async fn list_material_suppliers(
    state: &State,
    caller: &Caller,
    request: pb::ListMaterialSuppliersRequest,
) -> Result<pb::ListMaterialSuppliersResponse, Error> {
    caller.require(Permission::MaterialSuppliersRead)?;
    let page_size = aip::page_size(request.page_size).map_err(|v| Error::Invalid(vec![v]))?;
    let mut filter = ListFilter::default();
    for c in aip::parse_filter(&request.filter)? {
        let understood = !c.negated
            && match c.field.as_str() {
                "material_id" if filter.material_id.is_none() => {
                    filter.material_id = c.value.parse().ok();
                    filter.material_id.is_some()
                }
                "supplier_id" if filter.supplier_id.is_none() => {
                    filter.supplier_id = c.value.parse().ok();
                    filter.supplier_id.is_some()
                }
                "preferred" if filter.preferred.is_none() => {
                    filter.preferred = c.value.parse().ok();
                    filter.preferred.is_some()
                }
                _ => false,
            };
        if !understood {
            return Err(Error::invalid(
                "filter",
                "supported, each once: `material_id = \"<uuid>\"`, `supplier_id = \"<uuid>\"`, \
                 `preferred = true|false`",
            ));
        }
    }
    let (_, descending) = aip::parse_order_by(&request.order_by, &["create_time"], "create_time")?;
    let listing = format!(
        "material_suppliers|{}|{}|{}",
        request.filter, request.order_by, request.show_deleted
    );
    let after: Option<store::Cursor> = state.page_tokens.decode(&listing, &request.page_token)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let rows = store::list(
        &mut tx,
        &filter,
        descending,
        request.show_deleted,
        after.as_ref(),
        page_size + 1,
    )
    .await?;
    tx.commit().await?;
    let (rows, next_page_token) =
        state
            .page_tokens
            .page(&listing, rows, page_size, store::cursor_after);
    Ok(pb::ListMaterialSuppliersResponse {
        material_suppliers: rows.iter().map(convert::link).collect(),
        next_page_token,
    })
}

/// Changes the masked terms of a live link if the etag is current.
#[tracing::instrument(skip_all)]
pub async fn update_material_supplier(
    state: &State,
    caller: &Caller,
    request: pb::UpdateMaterialSupplierRequest,
) -> Result<pb::UpdateMaterialSupplierResponse, Error> {
    caller.require(Permission::InventoryWrite)?;
    let paths = aip::field_mask(request.update_mask.as_ref(), UPDATABLE)?;
    let given = request.material_supplier.unwrap_or_default();
    let mut v = Violations::new();
    let (id, version) = resource_id_and_etag(&mut v, "material_supplier", &given.id, &given.etag);
    v.finish()?;
    let id = parsed(id)?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = store::get(&mut tx, id, false)
        .await?
        .ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    let mut merged = convert::link(&current);
    for path in &paths {
        match *path {
            "supplier_sku" => merged.supplier_sku.clone_from(&given.supplier_sku),
            "lead_time_days" => merged.lead_time_days = given.lead_time_days,
            "unit_price" => merged.unit_price.clone_from(&given.unit_price),
            "preferred" => merged.preferred = given.preferred,
            _ => {}
        }
    }
    let mut v = Violations::new();
    let values = parse_values(&mut v, &merged);
    v.finish()?;
    let values = parsed(values)?;
    if values.preferred && !current.preferred {
        store::demote_preferred(&mut tx, current.material_id, id).await?;
    }
    let row = store::update(&mut tx, id, version, &values).await?;
    tx.commit().await?;
    Ok(pb::UpdateMaterialSupplierResponse {
        material_supplier: Some(convert::link(&row)),
    })
}

/// Soft-deletes a link.
#[tracing::instrument(skip_all)]
pub async fn delete_material_supplier(
    state: &State,
    caller: &Caller,
    request: pb::DeleteMaterialSupplierRequest,
) -> Result<pb::DeleteMaterialSupplierResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, true).await?;
    Ok(pb::DeleteMaterialSupplierResponse {
        material_supplier: Some(convert::link(&row)),
    })
}

/// Restores a soft-deleted link (not preferred if another took that role meanwhile).
#[tracing::instrument(skip_all)]
pub async fn undelete_material_supplier(
    state: &State,
    caller: &Caller,
    request: pb::UndeleteMaterialSupplierRequest,
) -> Result<pb::UndeleteMaterialSupplierResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, false).await?;
    Ok(pb::UndeleteMaterialSupplierResponse {
        material_supplier: Some(convert::link(&row)),
    })
}

async fn set_deleted(
    state: &State,
    caller: &Caller,
    id: &str,
    etag: &str,
    deleted: bool,
) -> Result<store::LinkRow, Error> {
    caller.require(Permission::InventoryWrite)?;
    let (id, version) = id_and_etag(id, etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::set_deleted(&mut tx, id, version, deleted)
        .await
        .map_err(|e| e.nested("material_supplier"))?;
    tx.commit().await?;
    Ok(row)
}
