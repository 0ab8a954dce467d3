//! The clinic's price list: service codes with a description and a unit
//! price. One stream ([`PRICE_LIST_ID`]); a bill line takes its code's
//! description and (unless given) its price from it.

use std::collections::BTreeMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::StoredForm;
use crate::subject::Subject;
use crate::unique::{UniqueKey, UniqueKeys};

use super::error::{text, BillingError};
use super::money::Money;
use super::values::service_code;

/// The id of the price list's one stream.
pub const PRICE_LIST_ID: &str = "price_list";

/// A service code as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedPrice {
    /// The code (upper case).
    pub code: String,
    /// What the service is.
    pub description: String,
    /// Its price per unit.
    pub unit_price: Money,
}

/// A fact about the price list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum PriceListEvent {
    /// A code was listed, or its description or price changed.
    #[serde(rename = "price_list.code_set")]
    CodeSet(ListedPrice),
    /// A code was taken off the list (bills already made keep it).
    #[serde(rename = "price_list.code_retired")]
    CodeRetired { code: String },
}

impl DomainEvent for PriceListEvent {
    fn event_type(&self) -> String {
        match self {
            PriceListEvent::CodeSet(_) => "price_list.code_set",
            PriceListEvent::CodeRetired { .. } => "price_list.code_retired",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::codec::CURRENT_VERSION.to_owned()
    }
}

impl StoredForm for PriceListEvent {}

/// What may be asked of the price list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceListCommand {
    /// List a code, or change its description or price.
    Set {
        code: String,
        description: String,
        unit_price: i64,
    },
    /// Take a code off the list.
    Retire { code: String },
}

/// The codes on the list.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceList {
    codes: BTreeMap<String, ListedPrice>,
}

impl PriceList {
    /// The listed code `raw` (any case), if it is on the list.
    pub fn find(&self, raw: &str) -> Option<&ListedPrice> {
        let code = service_code(raw).ok()?;
        self.codes.get(&code)
    }

    fn decide(&self, command: PriceListCommand) -> Result<PriceListEvent, BillingError> {
        match command {
            PriceListCommand::Set {
                code,
                description,
                unit_price,
            } => Ok(PriceListEvent::CodeSet(ListedPrice {
                code: service_code(&code)?,
                description: text("description", &description, 200)?,
                unit_price: Money::parse("unit_price", unit_price)?,
            })),
            PriceListCommand::Retire { code } => {
                let code = service_code(&code)?;
                if !self.codes.contains_key(&code) {
                    return Err(BillingError::UnknownCode);
                }
                Ok(PriceListEvent::CodeRetired { code })
            }
        }
    }
}

impl Aggregate for PriceList {
    const TYPE: &'static str = "price_list";
    type Command = PriceListCommand;
    type Event = PriceListEvent;
    type Error = BillingError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PriceListEvent::CodeSet(listed) => {
                self.codes.insert(listed.code.clone(), listed);
            }
            PriceListEvent::CodeRetired { code } => {
                self.codes.remove(&code);
            }
        }
    }
}

impl UniqueKeys for PriceList {
    fn unique_keys(&self) -> Vec<UniqueKey> {
        Vec::new()
    }
}

impl Subject for PriceList {
    /// About no patient: a price list holds no one's data.
    fn patient(&self, _aggregate_id: &str) -> Option<Uuid> {
        None
    }
}
