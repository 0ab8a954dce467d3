//! Overbookings noted on the provider's stream, where a closure finds them.

use super::*;

fn noted(appointment_id: Uuid, period: Period) -> ProviderEvent {
    ProviderEvent::Overbooked {
        appointment_id,
        period,
    }
}

#[tokio::test]
async fn an_overbooking_is_noted_on_the_providers_stream() {
    given(
        vec![enrolled()],
        ProviderCommand::RecordOverbooking {
            appointment_id: APPOINTMENT,
            period: monday_ten(),
        },
    )
    .await
    .then_expect_events(vec![noted(APPOINTMENT, monday_ten())]);
}

#[tokio::test]
async fn no_overbooking_is_noted_for_a_provider_never_enrolled() {
    given(
        vec![],
        ProviderCommand::RecordOverbooking {
            appointment_id: APPOINTMENT,
            period: monday_ten(),
        },
    )
    .await
    .then_expect_error(ScheduleError::UnknownProvider);
}

#[test]
fn a_closure_finds_the_overbookings_its_period_overlaps() {
    let mut provider = Provider::default();
    provider.apply(enrolled());
    let later = Uuid::from_u128(0xA98);
    provider.apply(noted(APPOINTMENT, monday_ten()));
    provider.apply(noted(later, period(la(12, 8, 14, 0), la(12, 8, 14, 30))));
    let morning = period(la(12, 7, 9, 0), la(12, 7, 12, 0));
    assert_eq!(
        provider.overbookings_over(&morning).collect::<Vec<_>>(),
        vec![APPOINTMENT]
    );
    // Half-open: a closure ending as the overbooking starts does not reach it.
    let before = period(la(12, 7, 9, 0), monday_ten().start);
    assert_eq!(provider.overbookings_over(&before).count(), 0);
    let week = period(la(12, 7, 0, 0), la(12, 14, 0, 0));
    assert_eq!(
        provider.overbookings_over(&week).collect::<Vec<_>>(),
        vec![APPOINTMENT, later]
    );
}
