//! The ClickHouse event store on a real ClickHouse 18.16: round trips, first-wins writes, and reads that count an
//! identity once even when a replay put it into the tables twice (before any merge). These calls fail on 18.16 if the
//! client's schema validation is switched back on (it asks for formats 18.16 does not have).

use aggregate::clickhouse_store::{ClickHouseStore, Enrichment};
use aggregate::{EventQuery, EventStore, ScanFilter, Written};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use schemas::event::Event;
use testkit::ClickHouseServer;
use uuid::Uuid;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn event(tx: &str, sub: &str, props: &str, ingested: &str) -> Event {
    Event {
        organization_id: Uuid::from_u128(0xC0FFEE),
        external_subscription_id: sub.into(),
        transaction_id: tx.into(),
        code: "calls".into(),
        timestamp: t("2024-05-01T10:00:00.123456Z"),
        properties: props.into(),
        precise_total_amount_cents: Some("12345678901234.123456789".parse().unwrap()),
        ingested_at: t(ingested),
    }
}

async fn store() -> (ClickHouseStore, &'static ClickHouseServer, String) {
    let server = ClickHouseServer::shared();
    let database = server.database();
    ClickHouseStore::migrate(&server.url(), &database).await.expect("migrate");
    ClickHouseStore::migrate(&server.url(), &database).await.expect("migrations are idempotent");
    (ClickHouseStore::new(&server.url(), &database), server, database)
}

fn scan_all() -> ScanFilter {
    ScanFilter {
        organization_id: Uuid::from_u128(0xC0FFEE),
        external_subscription_ids: vec![],
        codes: vec![],
        from: t("2000-01-01T00:00:00Z"),
        to: t("2100-01-01T00:00:00Z"),
    }
}

#[tokio::test]
async fn events_round_trip_and_the_first_write_wins() {
    let (store, server, db) = store().await;
    let first = event("tx-1", "sub-1", r#"{"n":"1","s":"é \"q\""}"#, "2024-05-01T10:00:01Z");
    let again = event("tx-1", "sub-1", r#"{"n":"2"}"#, "2024-05-01T10:00:02Z");
    let other_sub = event("tx-1", "sub-2", r#"{"n":"3"}"#, "2024-05-01T10:00:03Z");
    let written = store.write(&[first.clone(), again.clone(), other_sub.clone()]).await.unwrap();
    assert_eq!(written, Written { new: 2, duplicates: vec![1] }, "the second sending of tx-1 is a duplicate");
    let written = store.write(&[again]).await.unwrap();
    assert_eq!(written, Written { new: 0, duplicates: vec![0] }, "an identity already stored is skipped");
    // The sink reading a record again after a crash (same receipt time) is a replay, not a duplicate.
    assert_eq!(store.write(std::slice::from_ref(&first)).await.unwrap(), Written::default());
    let mut scanned = store.scan(&scan_all()).await.unwrap();
    scanned.sort_by(|a, b| a.external_subscription_id.cmp(&b.external_subscription_id));
    assert_eq!(scanned, vec![first.clone(), other_sub]);
    assert_eq!(store.find(first.organization_id, "tx-1").await.unwrap(), Some(first.clone()));
    assert_eq!(store.find(Uuid::from_u128(1), "tx-1").await.unwrap(), None);

    // The sink's enrichment lands in events_enriched as Decimal(38, 9).
    let enriched = event("tx-2", "sub-1", r#"{"n":"2.5"}"#, "2024-05-01T10:00:04Z");
    let x = Enrichment { value: Some("2.123456789".parse::<Decimal>().unwrap()), group_key: "region=eu".into() };
    assert_eq!(store.write_enriched(&[enriched], &[x]).await.unwrap().new, 1);
    let row = server
        .execute(&format!("SELECT toString(value), group_key FROM {db}.events_enriched WHERE transaction_id = 'tx-2'"))
        .unwrap();
    assert_eq!(row.trim(), "2.123456789\tregion=eu");
}

/// A replay that raced past the write's check (or a crash between the two inserts) leaves the same identity twice in
/// the tables; reads still return it once, the first ingested copy.
#[tokio::test]
async fn reads_count_an_identity_once_before_any_merge() {
    let (store, server, db) = store().await;
    let first = event("tx-1", "sub-1", r#"{"n":"1"}"#, "2024-05-01T10:00:01Z");
    store.write(std::slice::from_ref(&first)).await.unwrap();
    let org = first.organization_id;
    for table in ["events_raw", "events_enriched"] {
        // A later copy with other content, inserted behind the store's back (no dedup check).
        let columns = if table == "events_raw" {
            "organization_id, external_subscription_id, transaction_id, code, timestamp_us, properties, ingested_us, version"
        } else {
            "organization_id, external_subscription_id, transaction_id, code, timestamp_us, properties, ingested_us, group_key"
        };
        let last = if table == "events_raw" { "0" } else { "''" };
        server
            .execute(&format!(
                "INSERT INTO {db}.{table} ({columns}) VALUES ('{org}', 'sub-1', 'tx-1', 'calls', {ts}, '{{\"n\":\"9\"}}', {ing}, {last})",
                ts = first.timestamp.timestamp_micros(),
                ing = first.ingested_at.timestamp_micros() + 5_000_000,
            ))
            .unwrap();
    }
    let raw = server.execute(&format!("SELECT count() FROM {db}.events_raw")).unwrap();
    assert_eq!(raw.trim(), "2", "the double is really there");
    assert_eq!(store.scan(&scan_all()).await.unwrap(), vec![first.clone()]);
    assert_eq!(store.find(org, "tx-1").await.unwrap(), Some(first.clone()));
    let (page, total) =
        store.list(&EventQuery { organization_id: org, limit: 10, offset: 0, ..EventQuery::default() }).await.unwrap();
    assert_eq!((page, total), (vec![first], 1));
    // A write of the identity after the double changes nothing either.
    assert_eq!(store.write(&[event("tx-1", "sub-1", "{}", "2024-05-02T00:00:00Z")]).await.unwrap().new, 0);
}

/// The check against stored events reads a day either side of each event's timestamp: a retry (same timestamp, or
/// one a server gave a little later) is found; a copy days apart is stored, and reads count it once in any period
/// that holds both.
#[tokio::test]
async fn the_stored_check_reaches_a_day_around_the_event() {
    let (store, _, _) = store().await;
    let first = event("tx-9", "sub-1", "{}", "2024-05-01T10:00:00Z");
    assert_eq!(store.write(std::slice::from_ref(&first)).await.unwrap().new, 1);
    let mut retry = event("tx-9", "sub-1", "{}", "2024-05-01T10:05:00Z");
    retry.timestamp = first.timestamp + chrono::Duration::hours(20);
    assert_eq!(store.write(&[retry]).await.unwrap(), Written { new: 0, duplicates: vec![0] });
    let mut far = event("tx-9", "sub-1", "{}", "2024-05-01T10:06:00Z");
    far.timestamp = first.timestamp + chrono::Duration::days(3);
    assert_eq!(store.write(std::slice::from_ref(&far)).await.unwrap().new, 1);
    let mut both = scan_all();
    both.external_subscription_ids = vec!["sub-1".into()];
    assert_eq!(store.scan(&both).await.unwrap(), vec![first], "one event in a window holding both copies");
}
