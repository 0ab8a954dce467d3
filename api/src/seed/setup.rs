//! The clinic before its patients: the staff's accounts, the providers
//! with their hours and time off, the clinic's holidays and price list.
//! An operator creates the first admin (as `users add` does); the admin
//! does the rest, as over the API.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use anamnesis_commands::dispatch::CommandBus;
use anamnesis_commands::identity::{Identity, NewAccount};
use anamnesis_commands::{Actor, EventMetadata};
use anamnesis_domain::billing::{PriceList, PriceListCommand, PRICE_LIST_ID};
use anamnesis_domain::schedule::{
    ClinicCalendar, ClinicCommand, ClinicZone, ClosureSpan, Provider, ProviderCommand,
    CLINIC_CALENDAR_ID,
};
use anamnesis_domain::user::{Role, Username};
use anyhow::Context;

use super::plan::{self, Clinician, ProviderPlan, Sizes};

/// Who acts as whom in the stories.
#[derive(Debug, Clone)]
pub struct Staff {
    pub front_desk: Vec<Uuid>,
    pub billing: Uuid,
    /// Per provider (in plan order): their user id and provider id.
    pub providers: Vec<(Uuid, Uuid, Clinician)>,
    /// Logins made, for the summary: (role, username).
    pub logins: Vec<(&'static str, String)>,
}

/// The metadata of a command by `user` acting as `role`.
pub fn by(user: Uuid, role: Role) -> EventMetadata {
    EventMetadata::by(Actor::new(user.to_string(), role.as_str()))
}

/// Creates the staff and providers, and the clinic's calendar and prices.
pub async fn clinic(
    (bus, identity): (&CommandBus, &Identity),
    sizes: &Sizes,
    providers: &[ProviderPlan],
    hash: &str,
    (zone, now): (ClinicZone, DateTime<Utc>),
) -> anyhow::Result<Staff> {
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let operator = EventMetadata::by(Actor::new(format!("cli:{operator}"), "operator"));
    let seed = sizes.seed;
    let mut logins = Vec::new();
    let admin_name = plan::username(seed, "admin", 1);
    let admin = account(identity, &admin_name, Role::Admin, hash, &operator).await?;
    logins.push(("admin", admin_name));
    let as_admin = by(admin, Role::Admin);
    let desks = (sizes.providers / 3).max(1);
    let mut front_desk = Vec::new();
    for n in 1..=desks {
        let name = plan::username(seed, "desk", n);
        front_desk.push(account(identity, &name, Role::Staff, hash, &as_admin).await?);
        logins.push(("staff", name));
    }
    let billing_name = plan::username(seed, "billing", 1);
    let billing = account(identity, &billing_name, Role::Staff, hash, &as_admin).await?;
    logins.push(("staff", billing_name));
    for (role, what) in [(Role::Compliance, "compliance"), (Role::Analyst, "analyst")] {
        let name = plan::username(seed, what, 1);
        account(identity, &name, role, hash, &as_admin).await?;
        logins.push((role.as_str(), name));
    }
    let mut enrolled = Vec::new();
    for p in providers {
        let role = match p.kind {
            Clinician::Doctor => Role::Doctor,
            Clinician::Nurse => Role::Nurse,
        };
        let user = account(identity, &p.username, role, hash, &as_admin).await?;
        logins.push((role.as_str(), p.username.clone()));
        let provider = provider(bus, p, (user, role), &as_admin, (zone, sizes, now)).await?;
        enrolled.push((user, provider, p.kind));
    }
    calendar(bus, sizes, &as_admin, (zone, now)).await?;
    prices(bus, &as_admin).await?;
    Ok(Staff {
        front_desk,
        billing,
        providers: enrolled,
        logins,
    })
}

async fn account(
    identity: &Identity,
    username: &str,
    role: Role,
    hash: &str,
    metadata: &EventMetadata,
) -> anyhow::Result<Uuid> {
    let parsed =
        Username::parse(username).map_err(|e| anyhow::anyhow!("username {username}: {e}"))?;
    let account = NewAccount {
        user_id: Uuid::now_v7(),
        username: username.to_owned(),
        password: String::new(),
        role,
        patient_id: None,
    };
    let (user_id, _) = identity
        .create_hashed(account, parsed, hash.to_owned(), metadata)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "creating account {username}: {e} (a database seeded with this --seed before \
                 holds its names: choose another --seed)"
            )
        })?;
    Ok(user_id)
}

async fn provider(
    bus: &CommandBus,
    p: &ProviderPlan,
    (user, role): (Uuid, Role),
    as_admin: &EventMetadata,
    (zone, sizes, now): (ClinicZone, &Sizes, DateTime<Utc>),
) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    let stream = id.to_string();
    let what = || format!("provider {}", p.index + 1);
    bus.create::<Provider>(
        &stream,
        ProviderCommand::Enroll {
            user_id: user,
            user_role: Some(role),
            display_name: p.display_name.clone(),
            specialty: p.specialty.to_owned(),
            default_minutes: p.minutes,
        },
        &(),
        as_admin,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}: enrolling: {e}", what()))?;
    bus.execute::<Provider>(
        &stream,
        ProviderCommand::SetAvailability {
            input: p.availability(),
        },
        &(),
        as_admin,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}: hours: {e}", what()))?;
    if let Some((from, to)) = p.time_off {
        // Entered ahead, as time off is: a day before the window opens.
        let entered = (zone.day(sizes.first_day()).0 - Duration::days(1)).min(now);
        bus.execute::<Provider>(
            &stream,
            ProviderCommand::AddTimeOff {
                closure_id: Uuid::now_v7(),
                span: ClosureSpan::Days { from, to },
                reason: "Annual leave".into(),
                zone,
                now: entered,
            },
            &(),
            as_admin,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}: time off: {e}", what()))?;
    }
    Ok(id)
}

async fn calendar(
    bus: &CommandBus,
    sizes: &Sizes,
    as_admin: &EventMetadata,
    (zone, now): (ClinicZone, DateTime<Utc>),
) -> anyhow::Result<()> {
    let entered = (zone.day(sizes.first_day()).0 - Duration::days(1)).min(now);
    for (date, name) in plan::holidays(sizes) {
        bus.execute::<ClinicCalendar>(
            CLINIC_CALENDAR_ID,
            ClinicCommand::AddHoliday {
                closure_id: Uuid::now_v7(),
                span: ClosureSpan::Days {
                    from: date,
                    to: date,
                },
                reason: name.to_owned(),
                zone,
                now: entered,
            },
            &(),
            as_admin,
        )
        .await
        .map_err(|e| anyhow::anyhow!("holiday {date}: {e}"))?;
    }
    Ok(())
}

async fn prices(bus: &CommandBus, as_admin: &EventMetadata) -> anyhow::Result<()> {
    for (code, description, unit_price) in super::names::PRICES {
        bus.execute::<PriceList>(
            PRICE_LIST_ID,
            PriceListCommand::Set {
                code: (*code).to_owned(),
                description: (*description).to_owned(),
                unit_price: *unit_price,
            },
            &(),
            as_admin,
        )
        .await
        .map_err(|e| anyhow::anyhow!("price of {code}: {e}"))
        .context("setting the price list")?;
    }
    Ok(())
}
