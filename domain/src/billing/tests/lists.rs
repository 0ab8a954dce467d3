//! Money, the price list and coverage.

use super::*;

// --- money -----------------------------------------------------------------------

#[test]
fn money_overflow_is_an_error_not_a_wrap() {
    assert_eq!(cents(i64::MAX).plus(cents(1)), Err(BillingError::Overflow));
    assert_eq!(cents(i64::MIN).minus(cents(1)), Err(BillingError::Overflow));
    assert_eq!(
        cents(i64::MAX / 2 + 1).times(2),
        Err(BillingError::Overflow)
    );
    assert_eq!(cents(250).times(3), Ok(cents(750)));
}

#[test]
fn an_amount_is_whole_minor_units_within_range() {
    assert_eq!(
        Money::parse("amount", -1),
        Err(BillingError::InvalidAmount("amount"))
    );
    assert_eq!(
        Money::parse("amount", MAX_AMOUNT + 1),
        Err(BillingError::InvalidAmount("amount"))
    );
    assert_eq!(
        Money::positive("amount", 0),
        Err(BillingError::InvalidAmount("amount"))
    );
    assert_eq!(serde_json::to_string(&cents(1999)).unwrap(), "1999");
}

#[test]
fn a_currency_is_three_capital_letters() {
    assert_eq!(usd().as_str(), "USD");
    for bad in ["usd", "US", "USDX", "U$D", ""] {
        assert_eq!(
            Currency::parse(bad),
            Err(BillingError::InvalidCurrency),
            "{bad}"
        );
    }
}

// --- price list ------------------------------------------------------------------

#[tokio::test]
async fn a_code_is_listed_upper_cased_with_its_price() {
    TestFramework::<PriceList>::with(())
        .given_no_previous_events()
        .when_async(PriceListCommand::Set {
            code: " lab-1 ".into(),
            description: "service LAB-1".into(),
            unit_price: 1_500,
        })
        .await
        .then_expect_events(vec![PriceListEvent::CodeSet(listed("LAB-1", 1_500))]);
}

#[tokio::test]
async fn a_code_of_another_shape_or_a_negative_price_is_refused() {
    for (code, price, error) in [
        ("99 213", 100, BillingError::InvalidCode("code")),
        ("A\u{0}", 100, BillingError::InvalidCharacters("code")),
        ("99213", -1, BillingError::InvalidAmount("unit_price")),
    ] {
        TestFramework::<PriceList>::with(())
            .given_no_previous_events()
            .when_async(PriceListCommand::Set {
                code: code.into(),
                description: "x".into(),
                unit_price: price,
            })
            .await
            .then_expect_error(error);
    }
}

#[tokio::test]
async fn an_unlisted_code_is_not_retired() {
    TestFramework::<PriceList>::with(())
        .given(vec![PriceListEvent::CodeSet(listed("99213", 12_000))])
        .when_async(PriceListCommand::Retire {
            code: "LAB-1".into(),
        })
        .await
        .then_expect_error(BillingError::UnknownCode);
}

#[test]
fn a_retired_code_is_no_longer_found() {
    let mut list = PriceList::default();
    list.apply(PriceListEvent::CodeSet(listed("99213", 12_000)));
    assert_eq!(list.find("99213"), Some(&listed("99213", 12_000)));
    list.apply(PriceListEvent::CodeRetired {
        code: "99213".into(),
    });
    assert_eq!(list.find("99213"), None);
}

// --- coverage ------------------------------------------------------------------

fn add_coverage(id: Uuid, rank: Rank, from: NaiveDate, to: Option<NaiveDate>) -> CoverageCommand {
    CoverageCommand::Add {
        coverage_id: id,
        payer: " Acme Health ".into(),
        member_id: "M-1".into(),
        plan: "Gold".into(),
        valid_from: from,
        valid_to: to,
        rank,
    }
}

#[tokio::test]
async fn a_coverage_is_recorded_trimmed() {
    TestFramework::<Coverage>::with(())
        .given_no_previous_events()
        .when_async(add_coverage(
            COVERAGE,
            Rank::Primary,
            day(2026, 1, 1),
            Some(day(2026, 12, 31)),
        ))
        .await
        .then_expect_events(vec![CoverageEvent::Added(coverage_entry())]);
}

#[tokio::test]
async fn a_coverage_ending_before_it_starts_is_refused() {
    TestFramework::<Coverage>::with(())
        .given_no_previous_events()
        .when_async(add_coverage(
            COVERAGE,
            Rank::Primary,
            day(2026, 2, 1),
            Some(day(2026, 1, 31)),
        ))
        .await
        .then_expect_error(BillingError::InvalidPeriod);
}

#[tokio::test]
async fn a_coverage_in_year_1800_is_refused() {
    TestFramework::<Coverage>::with(())
        .given_no_previous_events()
        .when_async(add_coverage(COVERAGE, Rank::Primary, day(1800, 1, 1), None))
        .await
        .then_expect_error(BillingError::ImplausibleDate("valid_from"));
}

#[tokio::test]
async fn two_primary_coverages_over_one_period_are_refused_a_secondary_is_not() {
    let given = vec![CoverageEvent::Added(coverage_entry())];
    TestFramework::<Coverage>::with(())
        .given(given.clone())
        .when_async(add_coverage(CLAIM, Rank::Primary, day(2026, 6, 1), None))
        .await
        .then_expect_error(BillingError::RankTaken);
    let mut expected = coverage_entry();
    expected.coverage_id = CLAIM;
    expected.rank = Rank::Secondary;
    expected.valid_from = day(2026, 6, 1);
    expected.valid_to = None;
    TestFramework::<Coverage>::with(())
        .given(given.clone())
        .when_async(add_coverage(CLAIM, Rank::Secondary, day(2026, 6, 1), None))
        .await
        .then_expect_events(vec![CoverageEvent::Added(expected)]);
    // Next year's primary does not overlap this year's.
    let mut next = coverage_entry();
    next.coverage_id = CLAIM;
    next.valid_from = day(2027, 1, 1);
    next.valid_to = None;
    TestFramework::<Coverage>::with(())
        .given(given)
        .when_async(add_coverage(CLAIM, Rank::Primary, day(2027, 1, 1), None))
        .await
        .then_expect_events(vec![CoverageEvent::Added(next)]);
}

#[tokio::test]
async fn an_ended_coverage_is_not_ended_again() {
    TestFramework::<Coverage>::with(())
        .given(vec![
            CoverageEvent::Added(coverage_entry()),
            CoverageEvent::Ended {
                coverage_id: COVERAGE,
                reason: "left the plan".into(),
            },
        ])
        .when_async(CoverageCommand::End {
            coverage_id: COVERAGE,
            reason: "again".into(),
        })
        .await
        .then_expect_error(BillingError::CoverageEnded);
}

#[tokio::test]
async fn a_listed_code_is_retired() {
    TestFramework::<PriceList>::with(())
        .given(vec![PriceListEvent::CodeSet(listed("99213", 12_000))])
        .when_async(PriceListCommand::Retire {
            code: "99213".into(),
        })
        .await
        .then_expect_events(vec![PriceListEvent::CodeRetired {
            code: "99213".into(),
        }]);
}

#[tokio::test]
async fn an_unknown_coverage_is_not_ended() {
    TestFramework::<Coverage>::with(())
        .given_no_previous_events()
        .when_async(CoverageCommand::End {
            coverage_id: COVERAGE,
            reason: "left".into(),
        })
        .await
        .then_expect_error(BillingError::UnknownCoverage);
}

#[tokio::test]
async fn a_coverage_ends_with_a_reason() {
    TestFramework::<Coverage>::with(())
        .given(vec![CoverageEvent::Added(coverage_entry())])
        .when_async(CoverageCommand::End {
            coverage_id: COVERAGE,
            reason: " changed employer ".into(),
        })
        .await
        .then_expect_events(vec![CoverageEvent::Ended {
            coverage_id: COVERAGE,
            reason: "changed employer".into(),
        }]);
}
