//! What must come through the running services because it is sealed with their keys: partners
//! (customers with a shipping address), trucks and drivers (licence numbers and phones are
//! encrypted). A few thousand calls, sixteen at a time.

use std::future::Future;

use anyhow::Context as _;
use futures::{StreamExt as _, TryStreamExt as _};
use logistics_proto::fleet::v1 as fleetpb;
use logistics_proto::partner::v1 as partnerpb;
use logistics_proto::r#type::v1::Decimal;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::call::authed;
use crate::load::scale;

/// Calls in flight while populating.
const IN_FLIGHT: usize = 16;

/// How many of each to create in one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fleet {
    /// Customers, each with one shipping address.
    pub customers: u32,
    /// Trucks.
    pub trucks: u32,
    /// Drivers.
    pub drivers: u32,
}

impl Fleet {
    /// The per-tenant share: 200 trucks and 300 drivers, for 1,000 customers.
    pub const FULL: Self = Self {
        customers: 1_000,
        trucks: 200,
        drivers: 300,
    };

    /// `FULL` scaled down (at least one of each).
    pub fn scaled(factor: f64) -> Self {
        let of = |n: u32| scale(n, factor);
        Self {
            customers: of(Self::FULL.customers),
            trucks: of(Self::FULL.trucks),
            drivers: of(Self::FULL.drivers),
        }
    }
}

/// What was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Populated {
    /// Customers created.
    pub customers: usize,
    /// Trucks created.
    pub trucks: usize,
    /// Drivers created.
    pub drivers: usize,
}

/// Clients of the services that seal what they store, and the admin token to call them with.
pub struct Services {
    /// Partner service.
    pub partner: partnerpb::partner_service_client::PartnerServiceClient<Channel>,
    /// Fleet service.
    pub fleet: fleetpb::fleet_service_client::FleetServiceClient<Channel>,
    /// An access token of the tenant's admin.
    pub token: String,
}

/// Runs `call(i)` for every `i` in `0..n`, [`IN_FLIGHT`] at a time; the first failure stops it.
async fn each<F, Fut>(n: u32, call: F) -> anyhow::Result<usize>
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    futures::stream::iter(0..n)
        .map(call)
        .buffer_unordered(IN_FLIGHT)
        .try_fold(0, |done, ()| async move { Ok(done + 1) })
        .await
}

/// Creates the customers, trucks and drivers of `size`. `seed` keeps the VINs and licence
/// numbers of different tenants apart.
pub async fn fleet_and_partners(
    services: &Services,
    size: Fleet,
    seed: u32,
) -> anyhow::Result<Populated> {
    let token = services.token.as_str();
    let customers = each(size.customers, |i| {
        let mut client = services.partner.clone();
        async move {
            let partner = client
                .create_partner(authed(token, customer(i)))
                .await
                .context("creating a customer")?
                .into_inner()
                .partner
                .context("no partner in the answer")?;
            client
                .create_address(authed(token, shipping_address(partner.id, i)))
                .await
                .context("creating a customer's address")?;
            Ok(())
        }
    })
    .await?;
    let trucks = each(size.trucks, |i| {
        let mut client = services.fleet.clone();
        async move {
            client
                .create_truck(authed(token, truck(seed, i)))
                .await
                .context("creating a truck")?;
            Ok(())
        }
    })
    .await?;
    let drivers = each(size.drivers, |i| {
        let mut client = services.fleet.clone();
        async move {
            client
                .create_driver(authed(token, driver(seed, i)))
                .await
                .context("creating a driver")?;
            Ok(())
        }
    })
    .await?;
    Ok(Populated {
        customers,
        trucks,
        drivers,
    })
}

const CITIES: [(&str, &str); 5] = [
    ("Berlin", "10115"),
    ("Hamburg", "20457"),
    ("Munich", "80331"),
    ("Cologne", "50667"),
    ("Leipzig", "04109"),
];

fn customer(i: u32) -> partnerpb::CreatePartnerRequest {
    partnerpb::CreatePartnerRequest {
        request_id: Uuid::now_v7().to_string(),
        partner: Some(partnerpb::Partner {
            kind: partnerpb::PartnerKind::Organization as i32,
            legal_name: format!("Bench Customer {i:05} GmbH"),
            display_name: format!("Bench Customer {i:05}"),
            country_code: "DE".to_owned(),
            default_currency_code: "EUR".to_owned(),
            ..Default::default()
        }),
        roles: vec![partnerpb::PartnerRole::Customer as i32],
    }
}

fn shipping_address(partner_id: String, i: u32) -> partnerpb::CreateAddressRequest {
    let (city, postal_code) = CITIES[i as usize % CITIES.len()];
    partnerpb::CreateAddressRequest {
        request_id: Uuid::now_v7().to_string(),
        address: Some(partnerpb::Address {
            partner_id,
            kind: partnerpb::AddressKind::Shipping as i32,
            line1: format!("Hafenstraße {}", 1 + i % 200),
            city: city.to_owned(),
            postal_code: postal_code.to_owned(),
            country_code: "DE".to_owned(),
            default: true,
            ..Default::default()
        }),
    }
}

fn decimal(value: &str) -> Option<Decimal> {
    Some(Decimal {
        value: value.to_owned(),
    })
}

/// A 24 t lorry; its VIN's serial is unique per seed and index.
fn truck(seed: u32, i: u32) -> fleetpb::CreateTruckRequest {
    fleetpb::CreateTruckRequest {
        request_id: Uuid::now_v7().to_string(),
        truck: Some(fleetpb::Truck {
            plate: format!("B-BM {}", 1000 + i),
            vin: vin(seed * 10_000 + i),
            make: "Volvo".to_owned(),
            model: "FH16".to_owned(),
            year: 2024,
            payload_capacity_kg: decimal("24000"),
            volume_capacity_m3: decimal("90"),
            ..Default::default()
        }),
    }
}

/// A driver licensed for class CE for five years.
fn driver(seed: u32, i: u32) -> fleetpb::CreateDriverRequest {
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(5 * 365);
    fleetpb::CreateDriverRequest {
        request_id: Uuid::now_v7().to_string(),
        driver: Some(fleetpb::Driver {
            name: format!("Bench Driver {i:04}"),
            licence_number: format!("BM{seed:02}{i:06}"),
            licence_classes: vec![fleetpb::LicenceClass::Ce as i32],
            licence_expire_time: Some(logistics_platform::wire::timestamp(expires)),
            phone: format!("+49 151 {:07}", i),
            ..Default::default()
        }),
    }
}

/// A valid VIN with serial number `serial`: the check digit (position 9) found by trying each
/// against the fleet service's own rule.
fn vin(serial: u32) -> String {
    "0123456789X"
        .chars()
        .map(|check| format!("1M8GDM9A{check}KP{:06}", serial % 1_000_000))
        .find(|candidate| fleet::domain::truck::Vin::parse("vin", candidate).is_ok())
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_serial_gets_a_valid_vin() {
        for serial in [0, 1, 42, 10_007, 999_999] {
            assert_eq!(vin(serial).len(), 17, "serial {serial}");
        }
    }
}
